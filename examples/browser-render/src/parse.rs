//! HTML bytes → a flat list of [`Item`]s: the parse (html5ever through scraper's tree sink, with
//! the tree builder's stack of open elements capped), the style subset applied, the tree walked
//! with an explicit stack.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::tree_builder::{
    ElementFlags, NodeOrText, QuirksMode, Tracer, TreeBuilder, TreeBuilderOpts, TreeSink,
};
use html5ever::{Attribute, QualName, TokenizerResult};
use scraper::node::Element;
use scraper::{Html, HtmlTreeSink, Node};

use crate::css::{Display, StyleSheet};
use crate::Limits;

/// One step of the document, in order. `Open` and `Close` pair up; everything else stands alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Open(Block),
    Close,
    /// Raw text (whitespace not yet collapsed: `pre` keeps it).
    Text(String),
    Br,
    Hr,
    Img {
        src: Option<String>,
        alt: String,
    },
    /// A form control, already reduced to the text it shows (e.g. `[Search]`).
    Control(String),
}

/// What an opened element does to layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    /// A block box: a line break before and after, a blank line too when `blank`.
    Div {
        blank: bool,
    },
    Heading(u8),
    Pre,
    List {
        ordered: bool,
        start: i64,
        reversed: bool,
        kind: MarkerKind,
    },
    ListItem {
        value: Option<i64>,
    },
    Blockquote,
    DefinitionDesc,
    Table,
    Row,
    Cell {
        header: bool,
    },
    Inline(Inline),
    /// `<a href>`: the absolute URL, `None` when it could not be resolved or is not followable.
    Link(Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkerKind {
    Bullet,
    Decimal,
    LowerAlpha,
    UpperAlpha,
    LowerRoman,
    UpperRoman,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inline {
    Plain,
    Bold,
    Italic,
    Underline,
    Code,
    Quote,
    Bracket,
}

/// The outcome of a parse: what [`crate::Document`] keeps.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub title: String,
    pub items: Vec<Item>,
    pub images: Vec<String>,
    pub notes: Vec<String>,
}

/// Link and image URLs longer than this are not followed or fetched (shown as plain text).
const MAX_URL_BYTES: usize = 8 << 10;

/// Elements whose content is never shown, whatever the style sheet says.
const NEVER_SHOWN: &[&str] = &[
    "script", "style", "head", "template", "noscript", "title", "meta", "link", "base", "svg",
    "math", "canvas", "iframe", "object", "embed", "audio", "video", "frameset", "datalist",
    "dialog", "map", "param", "source", "track", "area", "select",
];

/// Elements that never grow the tree builder's stack (void) or whose content the tokenizer reads
/// as raw text: these are always passed through the depth cap, so a `<script>` past the cap is
/// still recognised as one (its text never shown).
const ALWAYS_PASSED: &[&str] = &[
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "param",
    "source",
    "track",
    "wbr",
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];

/// Parses `bytes` under `limits`.
pub(crate) fn parse(bytes: &[u8], base: &str, limits: &Limits) -> Parsed {
    let mut notes = Vec::new();
    let bytes = if bytes.len() > limits.max_document_bytes {
        notes.push(format!(
            "the document is {} bytes; only the first {} are shown",
            bytes.len(),
            limits.max_document_bytes
        ));
        &bytes[..limits.max_document_bytes]
    } else {
        bytes
    };
    let text = String::from_utf8_lossy(bytes);
    let (html, dropped, over_budget) = parse_capped(&text, limits.max_depth, limits.max_nodes);
    if over_budget {
        notes.push(format!(
            "the document makes more than {} nodes; the rest is not parsed",
            limits.max_nodes.saturating_mul(PARSE_WORK_PER_NODE)
        ));
    }
    if dropped > 0 {
        notes.push(format!(
            "the document nests deeper than {} elements; {dropped} deeper elements were flattened",
            limits.max_depth
        ));
    }
    let mut parsed = walk(&html, base, limits);
    notes.append(&mut parsed.notes);
    parsed.notes = notes;
    parsed
}

/// Runs html5ever's tokenizer into its tree builder through [`DepthCap`], which drops start tags
/// (and their end tags) once the tree builder holds `max_depth` open elements. Without it a
/// document of 200,000 nested `<div>`s costs the tree builder time quadratic in the depth (each
/// start tag scans the stack of open elements for a `<p>` in scope). It also stops the parse
/// once the sink has made `max_nodes * PARSE_WORK_PER_NODE` nodes. Returns the tree, how many
/// start tags were dropped and whether the parse was stopped.
///
/// The cap itself costs O(1) amortized per token: see [`DepthCap::pass`].
fn parse_capped(text: &str, max_depth: usize, max_nodes: usize) -> (Html, usize, bool) {
    let sink = CountingSink {
        inner: HtmlTreeSink::new(Html::new_document()),
        made: Cell::new(0),
    };
    let builder = TreeBuilder::new(sink, TreeBuilderOpts::default());
    let cap = DepthCap {
        inner: builder,
        max_depth: max_depth.max(8),
        max_made: max_nodes.saturating_mul(PARSE_WORK_PER_NODE),
        dropped_open: RefCell::new(BTreeMap::new()),
        dropped: Cell::new(0),
        estimate: Cell::new(0),
        passed_since_count: Cell::new(0),
    };
    let tokenizer = Tokenizer::new(cap, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(text));
    // `Script` results (a `</script>` was seen) mean nothing here: nothing runs, keep feeding.
    while let TokenizerResult::Script(_) = tokenizer.feed(&input) {}
    tokenizer.end();
    let cap = tokenizer.sink;
    let dropped = cap.dropped.get();
    let over_budget = cap.inner.sink.made.get() > max_nodes.saturating_mul(PARSE_WORK_PER_NODE);
    (cap.inner.sink.inner.finish(), dropped, over_budget)
}

/// The tree builder may make this many nodes per node the walk shows before the parse stops:
/// html5ever re-creates formatting elements (`<b>`, `<font>`...) left open across blocks for
/// each new block, so a hostile page can make a few hundred elements per start tag.
const PARSE_WORK_PER_NODE: usize = 2;

/// scraper's tree sink, counting the nodes it makes so [`DepthCap`] can stop the parse.
struct CountingSink {
    inner: HtmlTreeSink,
    made: Cell<usize>,
}

impl CountingSink {
    fn count(&self) {
        self.made.set(self.made.get().saturating_add(1));
    }
}

impl TreeSink for CountingSink {
    type Handle = ego_tree_id::NodeId;
    type Output = Html;
    type ElemName<'a> = <HtmlTreeSink as TreeSink>::ElemName<'a>;

    fn finish(self) -> Html {
        self.inner.finish()
    }
    fn parse_error(&self, msg: Cow<'static, str>) {
        self.inner.parse_error(msg);
    }
    fn get_document(&self) -> Self::Handle {
        self.inner.get_document()
    }
    fn elem_name<'a>(&'a self, target: &'a Self::Handle) -> Self::ElemName<'a> {
        self.inner.elem_name(target)
    }
    fn create_element(
        &self,
        name: QualName,
        attrs: Vec<Attribute>,
        flags: ElementFlags,
    ) -> Self::Handle {
        self.count();
        self.inner.create_element(name, attrs, flags)
    }
    fn create_comment(&self, text: StrTendril) -> Self::Handle {
        self.count();
        self.inner.create_comment(text)
    }
    fn create_pi(&self, target: StrTendril, data: StrTendril) -> Self::Handle {
        self.count();
        self.inner.create_pi(target, data)
    }
    fn append(&self, parent: &Self::Handle, child: NodeOrText<Self::Handle>) {
        if matches!(child, NodeOrText::AppendText(_)) {
            self.count();
        }
        self.inner.append(parent, child);
    }
    fn append_based_on_parent_node(
        &self,
        element: &Self::Handle,
        prev: &Self::Handle,
        child: NodeOrText<Self::Handle>,
    ) {
        self.inner.append_based_on_parent_node(element, prev, child);
    }
    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.inner
            .append_doctype_to_document(name, public_id, system_id);
    }
    fn mark_script_already_started(&self, node: &Self::Handle) {
        self.inner.mark_script_already_started(node);
    }
    fn pop(&self, node: &Self::Handle) {
        self.inner.pop(node);
    }
    fn get_template_contents(&self, target: &Self::Handle) -> Self::Handle {
        self.inner.get_template_contents(target)
    }
    fn same_node(&self, x: &Self::Handle, y: &Self::Handle) -> bool {
        self.inner.same_node(x, y)
    }
    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode);
    }
    fn append_before_sibling(&self, sibling: &Self::Handle, new_node: NodeOrText<Self::Handle>) {
        self.inner.append_before_sibling(sibling, new_node);
    }
    fn add_attrs_if_missing(&self, target: &Self::Handle, attrs: Vec<Attribute>) {
        self.inner.add_attrs_if_missing(target, attrs);
    }
    fn associate_with_form(
        &self,
        target: &Self::Handle,
        form: &Self::Handle,
        nodes: (&Self::Handle, Option<&Self::Handle>),
    ) {
        self.inner.associate_with_form(target, form, nodes);
    }
    fn remove_from_parent(&self, target: &Self::Handle) {
        self.inner.remove_from_parent(target);
    }
    fn reparent_children(&self, node: &Self::Handle, new_parent: &Self::Handle) {
        self.inner.reparent_children(node, new_parent);
    }
    fn is_mathml_annotation_xml_integration_point(&self, handle: &Self::Handle) -> bool {
        self.inner
            .is_mathml_annotation_xml_integration_point(handle)
    }
    fn set_current_line(&self, line_number: u64) {
        self.inner.set_current_line(line_number);
    }
    fn allow_declarative_shadow_roots(&self, intended_parent: &Self::Handle) -> bool {
        self.inner.allow_declarative_shadow_roots(intended_parent)
    }
    fn attach_declarative_shadow(
        &self,
        location: &Self::Handle,
        template: &Self::Handle,
        attrs: &[Attribute],
    ) -> bool {
        self.inner
            .attach_declarative_shadow(location, template, attrs)
    }
}

/// A token filter in front of the tree builder: see [`parse_capped`] and [`DepthCap::pass`].
struct DepthCap {
    inner: TreeBuilder<ego_tree_id::NodeId, CountingSink>,
    max_depth: usize,
    /// Nodes the sink may make; past it every token is dropped (the parse ends early).
    max_made: usize,
    /// Names of dropped start tags, so their end tags are dropped too (a count per name; a map,
    /// so thousands of distinct made-up names cost a logarithm each, not a scan).
    dropped_open: RefCell<BTreeMap<html5ever::LocalName, usize>>,
    dropped: Cell<usize>,
    /// The tree builder's depth as last counted, plus one per start tag and minus one per end
    /// tag passed since (the tree builder also opens and closes elements nobody wrote, so this
    /// drifts: it is counted again every `max_depth / 2` passed tokens).
    estimate: Cell<usize>,
    /// Tokens passed to the tree builder since `estimate` was last counted.
    passed_since_count: Cell<usize>,
}
mod ego_tree_id {
    pub(crate) type NodeId = <scraper::HtmlTreeSink as html5ever::tree_builder::TreeSink>::Handle;
}

/// Counts the handles the tree builder holds: its open elements plus a few (document, head,
/// form, active formatting elements): an upper bound on the depth of the current node.
struct Counter(Cell<usize>);
impl Tracer for Counter {
    type Handle = ego_tree_id::NodeId;
    fn trace_handle(&self, _node: &Self::Handle) {
        self.0.set(self.0.get() + 1);
    }
}

impl DepthCap {
    /// Counts the tree builder's handles: O(depth), so [`DepthCap::pass`] calls it only once
    /// every `max_depth / 2` passed tokens.
    fn depth(&self) -> usize {
        let counter = Counter(Cell::new(0));
        self.inner.trace_handles(&counter);
        counter.0.get()
    }

    /// Whether to pass `tag` on to the tree builder.
    ///
    /// Counting the tree builder's depth at every start tag would cost O(`max_depth`) a tag: a
    /// page of nothing but start tags past the cap would take seconds. So the depth is an
    /// estimate, counted exactly only after `max_depth / 2` tokens were passed since the last
    /// count (dropped tokens change nothing): amortized O(1) a token. Between counts the
    /// estimate moves by one per passed start or end tag, so a page nesting less than half the
    /// cap is never flattened, and the tree builder's real depth stays within a small multiple
    /// of the cap (elements it opens by itself aside, which the node budget bounds).
    ///
    /// Self-closing syntax (`<div/>`) does not make an HTML element empty (the tree builder
    /// ignores the slash and opens it), so it gets no pass: only void and raw-text elements
    /// ([`ALWAYS_PASSED`]) are passed whatever the depth.
    fn pass(&self, tag: &Tag) -> bool {
        let name: &str = &tag.name;
        match tag.kind {
            TagKind::StartTag => {
                let always = ALWAYS_PASSED.contains(&name);
                if !always {
                    if self.passed_since_count.get() >= self.max_depth / 2 {
                        self.estimate.set(self.depth());
                        self.passed_since_count.set(0);
                    }
                    if self.estimate.get() >= self.max_depth {
                        if !tag.self_closing {
                            *self
                                .dropped_open
                                .borrow_mut()
                                .entry(tag.name.clone())
                                .or_insert(0) += 1;
                        }
                        self.dropped.set(self.dropped.get() + 1);
                        return false;
                    }
                }
                if !is_void(name) {
                    self.estimate.set(self.estimate.get().saturating_add(1));
                }
                true
            }
            TagKind::EndTag => {
                let mut open = self.dropped_open.borrow_mut();
                if let Some(count) = open.get_mut(&tag.name) {
                    *count -= 1;
                    if *count == 0 {
                        open.remove(&tag.name);
                    }
                    return false;
                }
                self.estimate.set(self.estimate.get().saturating_sub(1));
                true
            }
        }
    }
}

impl TokenSink for DepthCap {
    type Handle = ego_tree_id::NodeId;

    fn process_token(&self, token: Token, line_number: u64) -> TokenSinkResult<Self::Handle> {
        if self.inner.sink.made.get() > self.max_made {
            return TokenSinkResult::Continue;
        }
        if let Token::TagToken(tag) = &token {
            if !self.pass(tag) {
                return TokenSinkResult::Continue;
            }
        }
        self.passed_since_count
            .set(self.passed_since_count.get().saturating_add(1));
        self.inner.process_token(token, line_number)
    }

    fn end(&self) {
        self.inner.end();
    }

    fn adjusted_current_node_present_but_not_in_html_namespace(&self) -> bool {
        self.inner
            .adjusted_current_node_present_but_not_in_html_namespace()
    }
}

/// First pass over the arena (a flat loop, no recursion): the title, `<base href>` and the text of
/// every `<style>` element.
fn head_facts(html: &Html) -> (String, Option<String>, String) {
    let mut title = None;
    let mut base = None;
    let mut css = String::new();
    for node in html.tree.nodes() {
        let Node::Element(el) = node.value() else {
            continue;
        };
        match el.name() {
            "title" if title.is_none() => {
                let mut t = String::new();
                for child in node.children() {
                    if let Node::Text(text) = child.value() {
                        t.push_str(text);
                    }
                }
                title = Some(t);
            }
            "base" if base.is_none() => base = el.attr("href").map(str::to_owned),
            "style" => {
                for child in node.children() {
                    if let Node::Text(text) = child.value() {
                        if css.len() + text.len() <= crate::css::MAX_CSS_BYTES {
                            css.push_str(text);
                            css.push('\n');
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (
        title
            .map(|t| crate::text::clean_title(&t))
            .unwrap_or_default(),
        base,
        css,
    )
}

/// Second pass: the tree in document order with an explicit stack, hidden subtrees skipped,
/// producing [`Item`]s.
fn walk(html: &Html, base: &str, limits: &Limits) -> Parsed {
    let (title, base_href, css) = head_facts(html);
    let sheet = StyleSheet::parse(&css);
    let base_url = url::Url::parse(base).ok();
    let base_url = match (&base_url, base_href) {
        (Some(b), Some(h)) => b.join(&h).ok().or(base_url.clone()),
        _ => base_url,
    };
    let resolve = |href: &str| -> Option<String> {
        let href = href.trim();
        if href.len() > MAX_URL_BYTES {
            return None;
        }
        let url = match &base_url {
            Some(b) => b.join(href).ok()?,
            None => url::Url::parse(href).ok()?,
        };
        match url.scheme() {
            "javascript" | "data" | "vbscript" => None,
            _ => Some(url.to_string()).filter(|u| u.len() <= MAX_URL_BYTES),
        }
    };

    let mut out = Parsed {
        title,
        ..Parsed::default()
    };
    let mut images_seen = BTreeSet::new();
    let mut images_over = 0usize;
    let mut nodes = 0usize;
    let mut flattened = false;
    // Per open element on the path from the root: whether it emitted an `Open`.
    let mut opened: Vec<bool> = Vec::new();

    let root = html.tree.root();
    let mut next = root.first_child();
    while let Some(node) = next {
        nodes += 1;
        if nodes > limits.max_nodes {
            out.notes.push(format!(
                "the document has more than {} elements and texts; the rest is not shown",
                limits.max_nodes
            ));
            break;
        }
        let mut descend = false;
        match node.value() {
            Node::Text(text) => out.items.push(Item::Text(text.to_string())),
            Node::Element(el) => {
                let display = display_of(el, &sheet);
                if display != Display::None {
                    let emitted = match element_item(el, display, &resolve) {
                        Emit::Container(block) if opened.len() < limits.max_depth => {
                            out.items.push(Item::Open(block));
                            true
                        }
                        Emit::Container(_) => {
                            flattened = true;
                            false
                        }
                        Emit::Transparent => false,
                        Emit::Void(item) => {
                            if let Item::Img { src: Some(src), .. } = &item {
                                if !images_seen.contains(src) {
                                    if images_seen.len() < limits.max_images {
                                        images_seen.insert(src.clone());
                                        out.images.push(src.clone());
                                    } else {
                                        images_over += 1;
                                    }
                                }
                            }
                            out.items.push(item);
                            false
                        }
                    };
                    if node.has_children() && !is_void(el.name()) {
                        opened.push(emitted);
                        descend = true;
                    } else if emitted {
                        // An empty container closes at once.
                        out.items.push(Item::Close);
                    }
                }
            }
            Node::Document | Node::Fragment => {
                descend = node.has_children();
                if descend {
                    opened.push(false);
                }
            }
            _ => {}
        }
        // Move on: down into the children, else to the next sibling, else up (closing each
        // ancestor left) until an ancestor has a next sibling.
        if descend {
            next = node.first_child();
            continue;
        }
        let mut at = node;
        next = loop {
            if let Some(sibling) = at.next_sibling() {
                break Some(sibling);
            }
            match at.parent() {
                Some(parent) if parent.id() != root.id() => {
                    if opened.pop() == Some(true) {
                        out.items.push(Item::Close);
                    }
                    at = parent;
                }
                _ => break None,
            }
        };
    }
    // Cut short (node cap): close what is open so `Open`/`Close` still pair up.
    while let Some(was_open) = opened.pop() {
        if was_open {
            out.items.push(Item::Close);
        }
    }
    if flattened {
        out.notes.push(format!(
            "the document nests deeper than {} elements; deeper structure is flattened",
            limits.max_depth
        ));
    }
    if images_over > 0 {
        out.notes.push(format!(
            "{images_over} more images than the {} fetched are not loaded",
            limits.max_images
        ));
    }
    out
}

fn is_void(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
    )
}

fn display_of(el: &Element, sheet: &StyleSheet) -> Display {
    let name = el.name();
    if NEVER_SHOWN.contains(&name) || el.attr("hidden").is_some() {
        return Display::None;
    }
    if let Some(inline) = el.attr("style").and_then(crate::css::inline_display) {
        return inline;
    }
    if el
        .attr("type")
        .is_some_and(|t| t.eq_ignore_ascii_case("hidden"))
        && name == "input"
    {
        return Display::None;
    }
    sheet.display(name, el.id(), el.classes())
}

enum Emit {
    Container(Block),
    Transparent,
    Void(Item),
}

fn element_item(el: &Element, display: Display, resolve: &dyn Fn(&str) -> Option<String>) -> Emit {
    let name = el.name();
    let block = match name {
        "br" => return Emit::Void(Item::Br),
        "hr" => return Emit::Void(Item::Hr),
        "img" => {
            return Emit::Void(Item::Img {
                src: el.attr("src").and_then(resolve),
                alt: el.attr("alt").unwrap_or("").to_owned(),
            })
        }
        "input" => return control(el).map_or(Emit::Transparent, |c| Emit::Void(Item::Control(c))),
        "wbr" | "col" | "colgroup" => return Emit::Transparent,
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => Block::Heading(name.as_bytes()[1] - b'0'),
        "p" | "dl" | "figure" | "address" | "fieldset" | "details" => Block::Div { blank: true },
        "pre" | "listing" | "xmp" | "plaintext" => Block::Pre,
        "ul" | "ol" | "menu" | "dir" => {
            let ordered = name == "ol";
            let reversed = ordered && el.attr("reversed").is_some();
            let start = el.attr("start").and_then(|s| s.trim().parse::<i64>().ok());
            let kind = if !ordered {
                MarkerKind::Bullet
            } else {
                match el.attr("type") {
                    Some("a") => MarkerKind::LowerAlpha,
                    Some("A") => MarkerKind::UpperAlpha,
                    Some("i") => MarkerKind::LowerRoman,
                    Some("I") => MarkerKind::UpperRoman,
                    _ => MarkerKind::Decimal,
                }
            };
            // A reversed list without `start` counts down from its item count: not known here,
            // so it starts at 1 and counts down (rare; honest enough).
            Block::List {
                ordered,
                start: start.unwrap_or(1),
                reversed,
                kind,
            }
        }
        "li" => Block::ListItem {
            value: el.attr("value").and_then(|s| s.trim().parse().ok()),
        },
        "blockquote" => Block::Blockquote,
        "dd" => Block::DefinitionDesc,
        "table" => Block::Table,
        "tr" => Block::Row,
        "td" | "th" => Block::Cell {
            header: name == "th",
        },
        "div" | "section" | "article" | "header" | "footer" | "nav" | "main" | "aside" | "form"
        | "center" | "caption" | "figcaption" | "dt" | "summary" | "hgroup" | "legend" | "body"
        | "html" | "search" | "tbody" | "thead" | "tfoot" => Block::Div { blank: false },
        "b" | "strong" => Block::Inline(Inline::Bold),
        "i" | "em" | "cite" | "var" | "dfn" => Block::Inline(Inline::Italic),
        "u" | "ins" => Block::Inline(Inline::Underline),
        "code" | "kbd" | "samp" | "tt" => Block::Inline(Inline::Code),
        "q" => Block::Inline(Inline::Quote),
        "button" | "textarea" => Block::Inline(Inline::Bracket),
        "a" => Block::Link(el.attr("href").and_then(resolve)),
        _ => Block::Inline(Inline::Plain),
    };
    // CSS `display` changes the box kind of plain containers (not of tables and lists).
    let block = match (display, block) {
        (Display::Block, Block::Inline(Inline::Plain)) => Block::Div { blank: false },
        (Display::Inline, Block::Div { .. }) => Block::Inline(Inline::Plain),
        (_, block) => block,
    };
    Emit::Container(block)
}

/// What an `<input>` shows, or `None` for nothing.
fn control(el: &Element) -> Option<String> {
    let kind = el.attr("type").unwrap_or("text").to_ascii_lowercase();
    let value = el.attr("value").unwrap_or("");
    Some(match kind.as_str() {
        "hidden" | "image" => return None,
        "submit" | "button" | "reset" => {
            let label = if value.is_empty() {
                if kind == "reset" {
                    "Reset"
                } else {
                    "Submit"
                }
            } else {
                value
            };
            format!("[{label}]")
        }
        "checkbox" => if el.attr("checked").is_some() {
            "[x]"
        } else {
            "[ ]"
        }
        .to_owned(),
        "radio" => if el.attr("checked").is_some() {
            "(*)"
        } else {
            "( )"
        }
        .to_owned(),
        _ => {
            let shown = if value.is_empty() {
                el.attr("placeholder").unwrap_or("")
            } else {
                value
            };
            format!("[{shown}____]")
        }
    })
}
