//! `portcullis check POLICY`: validates a policy file and lists its profiles.

use std::fmt::Write as _;
use std::path::PathBuf;

use portcullis_policy::Policy;

use crate::{policy_file, status, CommandError, Done};

/// Validate a policy file and list the profiles it defines.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "\
Validate a policy file and list the profiles it defines.

The file is parsed exactly as a broker parses it
(portcullis_policy::Policy::from_toml_str): unknown keys, values of the wrong type, limits
out of range, paths that are not clean and absolute, bad host patterns and undeclared
${parameters} are errors. Each error is printed to standard error as

    FILE:LINE:COLUMN: MESSAGE

naming the key to change, as compilers print errors (editors can jump to it). On success
the profiles and their parameters are printed to standard output.

A file larger than 4 MiB or not UTF-8 is refused without parsing.",
    after_long_help = "\
Examples:
  portcullis check examples/policies/renderer.toml
  cat policy.toml | portcullis check -

Exit status:
  0  the policy is valid
  1  the policy is invalid, or the file cannot be read, is larger than 4 MiB or is not UTF-8
  2  usage error (no POLICY argument, unknown flag)"
)]
pub struct CheckArgs {
    /// The policy file (TOML) to validate; `-` reads standard input.
    #[arg(value_name = "POLICY")]
    policy: PathBuf,
}

/// Loads the policy; lists its profiles, or returns the located error.
pub fn run(args: &CheckArgs) -> Result<Done, CommandError> {
    let policy = policy_file::load(&args.policy)?;
    Ok(Done {
        stdout: summary(&args.policy.display().to_string(), &policy),
        status: status::OK,
    })
}

/// `NAME: valid, N profiles` and one line per profile with its parameters.
fn summary(name: &str, policy: &Policy) -> String {
    let names: Vec<&str> = policy.profile_names().collect();
    let mut out = String::new();
    let count = match names.len() {
        0 => "defines no profiles".to_owned(),
        1 => "1 profile".to_owned(),
        n => format!("{n} profiles"),
    };
    let _ = writeln!(out, "{name}: valid, {count}");
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    for profile in names {
        let params = policy.profile_params(profile).unwrap_or_default();
        let params = if params.is_empty() {
            "no parameters".to_owned()
        } else {
            format!("parameters: {}", params.join(", "))
        };
        let _ = writeln!(out, "  {profile:<width$}  {params}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_profiles_and_parameters() {
        let policy = Policy::from_toml_str(
            "[profiles.renderer]\nparams = [\"site\", \"lang\"]\n[profiles.plugin]\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(
            summary("p.toml", &policy),
            "p.toml: valid, 2 profiles\n  plugin    no parameters\n  renderer  parameters: site, lang\n"
        );
    }

    #[test]
    fn an_empty_policy_is_valid_and_says_so() {
        let policy = Policy::from_toml_str("", "p.toml").unwrap();
        assert_eq!(
            summary("p.toml", &policy),
            "p.toml: valid, defines no profiles\n"
        );
    }
}
