//! A store-backed stand-in for the node (one `mvcc::Store`, no raft), so
//! the wire shims can be tested alone: writes are applied at once, under
//! a lock, and answered with fixed header ids ([`INFO`]).

use std::sync::Mutex;

use ferrocd_mvcc as mvcc;
use ferrocd_net::{AuthInfo, Authorizer, Credentials, EtcdError, KvService, ServerInfo};

/// The header fields every response of the double carries.
pub const INFO: ServerInfo = ServerInfo {
    cluster_id: 0xc1,
    member_id: 0x1d,
    raft_term: 2,
};

/// A single store behind a lock.
pub struct StoreDouble {
    store: mvcc::Store,
    writer: Mutex<()>,
}

impl StoreDouble {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        Self {
            store: mvcc::Store::default(),
            writer: Mutex::new(()),
        }
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut mvcc::WriteBatch<'_>) -> mvcc::Result<R>,
    ) -> Result<R, EtcdError> {
        let _g = self.writer.lock().unwrap();
        let mut b = self.store.write();
        let r = f(&mut b)?;
        b.commit();
        Ok(r)
    }
}

/// The double has no auth store: every caller is anonymous, as on a
/// node with auth disabled.
impl Authorizer for StoreDouble {
    async fn authorize(&self, _cred: Credentials) -> Result<Option<AuthInfo>, EtcdError> {
        Ok(None)
    }
}

impl KvService for StoreDouble {
    fn info(&self) -> ServerInfo {
        INFO
    }

    async fn range(
        &self,
        _who: Option<AuthInfo>,
        req: mvcc::RangeRequest,
        _serializable: bool,
    ) -> Result<mvcc::RangeResponse, EtcdError> {
        Ok(self.store.snapshot().range(&req)?.to_response())
    }

    async fn put(
        &self,
        _who: Option<AuthInfo>,
        req: mvcc::PutRequest,
    ) -> Result<mvcc::PutResponse, EtcdError> {
        self.write(|b| b.put(&req).map(|a| a.response))
    }

    async fn delete_range(
        &self,
        _who: Option<AuthInfo>,
        req: mvcc::DeleteRangeRequest,
    ) -> Result<mvcc::DeleteRangeResponse, EtcdError> {
        self.write(|b| b.delete_range(&req).map(|a| a.response))
    }

    async fn txn(
        &self,
        _who: Option<AuthInfo>,
        req: mvcc::TxnRequest,
    ) -> Result<mvcc::TxnResponse, EtcdError> {
        self.write(|b| b.txn(&req).map(|a| a.response))
    }

    async fn compact(
        &self,
        _who: Option<AuthInfo>,
        revision: i64,
        _physical: bool,
    ) -> Result<i64, EtcdError> {
        self.write(|b| b.compact(revision))
    }
}
