//! The typed client a child uses to talk to its broker.

use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_ipc::{Channel, RecvError, SendError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::files::ServiceClient;
use crate::protocol::{BrokerToChild, ChildToBroker};

/// A child's channel to the broker, typed by the application's messages: `Up` goes to the
/// broker, `Down` comes from it. Cheap to share between the child's threads by reference.
pub struct ChildContext<Up, Down> {
    channel: Arc<Channel>,
    pub(crate) service: Arc<ServiceClient>,
    _types: PhantomData<fn(Up) -> Down>,
}

impl<Up, Down> std::fmt::Debug for ChildContext<Up, Down> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildContext")
            .field("channel", &self.channel)
            .finish()
    }
}

/// Talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildChannelError {
    /// Sending failed (the broker is gone, or the message is over the channel's limits).
    #[error("send to broker failed")]
    Send(#[from] SendError),
    /// Receiving failed (the broker is gone, or sent something that is not a message).
    #[error("receive from broker failed")]
    Recv(#[from] RecvError),
}

impl<Up: Serialize, Down: DeserializeOwned> ChildContext<Up, Down> {
    pub(crate) fn new(channel: Arc<Channel>, service: Arc<ServiceClient>) -> Self {
        Self {
            channel,
            service,
            _types: PhantomData,
        }
    }

    /// Sends one message to the broker, blocking until the kernel has taken it.
    pub fn send(&self, msg: &Up) -> Result<(), ChildChannelError> {
        self.send_with_fds(msg, &[])
    }

    /// Sends one message with file descriptors attached (SCM_RIGHTS).
    pub fn send_with_fds(&self, msg: &Up, fds: &[BorrowedFd<'_>]) -> Result<(), ChildChannelError> {
        self.channel.send(&ChildToBroker::App(msg), fds, None)?;
        Ok(())
    }

    /// Receives the next message from the broker, blocking until it arrives.
    pub fn recv(&self) -> Result<Down, ChildChannelError> {
        Ok(self.recv_with_fds_until(None)?.0)
    }

    /// Receives the next message, or fails with [`RecvError::TimedOut`] after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Down, ChildChannelError> {
        Ok(self.recv_with_fds_until(Some(Instant::now() + timeout))?.0)
    }

    /// Receives the next message with the fds that came with it.
    pub fn recv_with_fds(&self) -> Result<(Down, Vec<OwnedFd>), ChildChannelError> {
        self.recv_with_fds_until(None)
    }

    fn recv_with_fds_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(Down, Vec<OwnedFd>), ChildChannelError> {
        let (BrokerToChild::App(msg), fds) = self.channel.recv::<BrokerToChild<Down>>(deadline)?;
        Ok((msg, fds))
    }

    /// Sends `msg` and waits for the broker's next message.
    pub fn request(&self, msg: &Up) -> Result<Down, ChildChannelError> {
        self.send(msg)?;
        self.recv()
    }

    /// The context of a program a broker started with `Broker::spawn_plugin`: a locked-down
    /// child that executed it kept its two channels open at [`crate::CHANNEL_FD`] and
    /// [`crate::SERVICE_FD`]. Nothing is locked down here — that happened before the exec, and
    /// the filter, namespaces and limits stay — this only takes the two fds. Channel limits are
    /// the defaults (the broker enforces its own on what it receives).
    ///
    /// Errors: `AlreadyExists` on a second call (the fds are taken once), `NotFound` when fd 3
    /// or 4 is not a socket (the program was not started as a plugin).
    pub fn inherited() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        static TAKEN: AtomicBool = AtomicBool::new(false);
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "portcullis: the inherited channels were taken already",
            ));
        }
        if !(crate::sys::is_socket(crate::CHANNEL_FD) && crate::sys::is_socket(crate::SERVICE_FD)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "portcullis: fds 3 and 4 are not channels: not started by Broker::spawn_plugin",
            ));
        }
        let limits = portcullis_ipc::ChannelLimits::default();
        let channel = Channel::from_fd(crate::sys::owned_fd(crate::CHANNEL_FD), limits);
        let service = Channel::from_fd(crate::sys::owned_fd(crate::SERVICE_FD), limits);
        Ok(Self::new(
            Arc::new(channel),
            Arc::new(ServiceClient::new(service, false)),
        ))
    }

    /// The raw channel, for tests that play a hostile child.
    #[doc(hidden)]
    pub fn raw_channel(&self) -> &Channel {
        &self.channel
    }
}
