//! One stdio server shared by every HTTP session: requests from many clients go to the one
//! process under ids of the adapter's own, and everything the process sends finds its client.
//!
//! - A client's request gets a fresh integer id toward the process; its answer goes back under
//!   the client's id, on the SSE stream of the POST that carried the request. A `progressToken`
//!   is replaced the same way, so two clients' tokens never meet.
//! - `initialize` reaches the process once, from the adapter as its client (offering sampling,
//!   elicitation and roots, which it routes to clients); every client is answered from the
//!   process's own answer and `notifications/initialized` is not repeated.
//! - A request from the process (sampling, elicitation, roots) goes to a client that offered that
//!   capability: the one whose request is the most recent still in flight (the one it is about,
//!   when one client is active), else one listening on GET; with none, the process is told so; it is sent under an id of the adapter's (`gw-N`) and the
//!   client's answer goes back under the process's id. The adapter answers `ping` itself.
//! - Notifications: progress to its request's stream; everything else (list changes, log
//!   messages, resource updates) to every session's GET stream.
//! - `notifications/cancelled` names the request by the process's id; a client can cancel only
//!   its own requests.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Where messages for a client go: the SSE stream of one POST, or a session's GET stream.
pub type Outbox = mpsc::UnboundedSender<Value>;

/// The code and text of a request the process will never answer (it exited). The gateway's own
/// code for a failed upstream, so a client reads it as any upstream failure.
pub const PROCESS_GONE: (i64, &str) = (-32008, "Upstream failed: the stdio server exited");

struct Pending {
    session: Arc<str>,
    /// The id the client gave.
    id: Value,
    outbox: Outbox,
}

struct Session {
    /// The GET stream; `None` until the client opens one.
    stream: Option<Outbox>,
    /// The capabilities the client declared in its `initialize`.
    capabilities: Value,
}

impl Session {
    /// Whether the client offered what a request of the program's needs.
    fn can_answer(&self, method: &str) -> bool {
        let needs = match method {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            "roots/list" => "roots",
            _ => return true,
        };
        self.capabilities.get(needs).is_some()
    }
}

#[derive(Default)]
struct State {
    next: u64,
    pending: HashMap<u64, Pending>,
    /// The token sent to the process → the request it belongs to and the client's own token.
    progress: HashMap<String, (u64, Value)>,
    sessions: HashMap<Arc<str>, Session>,
    /// Requests of the process sent to a client: `gw-N` → (session, the process's id).
    asked: HashMap<String, (Arc<str>, Value)>,
    /// The process's answer to `initialize`.
    init: Option<Value>,
    gone: bool,
}

pub struct Mux {
    state: Mutex<State>,
    to_child: mpsc::UnboundedSender<String>,
    /// Held while the one `initialize` toward the process runs.
    initializing: tokio::sync::Mutex<()>,
}

impl Mux {
    pub fn new(to_child: mpsc::UnboundedSender<String>) -> Self {
        Self {
            state: Mutex::default(),
            to_child,
            initializing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, msg: &Value) {
        let _ = self.to_child.send(msg.to_string());
    }

    /// Whether a client's request is in flight.
    pub fn busy(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// Whether the process has exited (the adapter is about to exit too, and be started again).
    pub fn gone(&self) -> bool {
        self.lock().gone
    }

    /// A new session for a client that declared `capabilities`.
    pub fn open_session(&self, capabilities: &Value) -> Arc<str> {
        let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let session = Session {
            stream: None,
            capabilities: capabilities.clone(),
        };
        self.lock().sessions.insert(id.clone(), session);
        id
    }

    pub fn session(&self, id: &str) -> Option<Arc<str>> {
        self.lock()
            .sessions
            .get_key_value(id)
            .map(|(k, _)| k.clone())
    }

    /// The session's GET stream (a newer one replaces an older).
    pub fn listen(&self, session: &Arc<str>, outbox: Outbox) {
        if let Some(s) = self.lock().sessions.get_mut(session) {
            s.stream = Some(outbox);
        }
    }

    /// Ends a session: its requests still in flight are cancelled at the process.
    pub fn close_session(&self, session: &str) {
        let cancelled: Vec<u64> = {
            let mut s = self.lock();
            s.sessions.remove(session);
            let mine: Vec<u64> = (s.pending.iter())
                .filter(|(_, p)| &*p.session == session)
                .map(|(n, _)| *n)
                .collect();
            for n in &mine {
                s.pending.remove(n);
            }
            s.progress.retain(|_, (n, _)| !mine.contains(n));
            s.asked.retain(|_, (owner, _)| &**owner != session);
            mine
        };
        for n in cancelled {
            self.send(
                &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": n, "reason": "the client ended its session"}}),
            );
        }
    }

    /// Whether the process has answered `initialize` (it is pinged from then on).
    pub fn initialized(&self) -> bool {
        self.lock().init.is_some()
    }

    /// Pings the process as its client: whether it answered within `wait`.
    pub async fn ping(&self, wait: std::time::Duration) -> bool {
        let (tx, mut answers) = mpsc::unbounded_channel();
        let n = {
            let mut s = self.lock();
            if s.gone {
                return false;
            }
            s.next += 1;
            let n = s.next;
            let own: Arc<str> = "".into();
            s.pending.insert(
                n,
                Pending {
                    session: own,
                    id: json!("ping"),
                    outbox: tx,
                },
            );
            n
        };
        self.send(&json!({"jsonrpc": "2.0", "id": n, "method": "ping"}));
        let answered = tokio::time::timeout(wait, answers.recv())
            .await
            .is_ok_and(|m| m.is_some_and(|m| m.get("result").is_some()));
        self.lock().pending.remove(&n);
        answered
    }

    /// The process's answer to `initialize` (asked once, with the first client's parameters).
    pub async fn initialize(&self, params: &Value) -> Result<Value, Value> {
        let _one = self.initializing.lock().await;
        if let Some(init) = self.lock().init.clone() {
            return Ok(init);
        }
        // The program's client is the adapter, on behalf of every client: it offers what the
        // adapter can route to a client (sampling, elicitation, roots), in the first client's
        // revision.
        let params = &json!({
            "protocolVersion": params["protocolVersion"],
            "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}},
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        let session: Arc<str> = "".into();
        let mut answers = self.request(
            &session,
            &json!({"jsonrpc": "2.0", "id": 0,
            "method": "initialize", "params": params}),
        );
        let answer = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(m) = answers.recv().await {
                if m.get("result").is_some() || m.get("error").is_some() {
                    return Some(m);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        match answer {
            Some(m) if m.get("result").is_some() => {
                self.lock().init = Some(m["result"].clone());
                self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
                Ok(m["result"].clone())
            }
            Some(m) => Err(m["error"].clone()),
            None => Err(json!({"code": -32008,
                "message": "Upstream failed: the stdio server did not answer initialize"})),
        }
    }

    /// Sends a client's request; its answer (and what belongs to it) arrive on the receiver,
    /// which closes after the answer.
    pub fn request(&self, session: &Arc<str>, msg: &Value) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut out = msg.clone();
        {
            let mut s = self.lock();
            if s.gone {
                let (code, message) = PROCESS_GONE;
                let _ = tx.send(json!({"jsonrpc": "2.0", "id": msg["id"],
                    "error": {"code": code, "message": message}}));
                return rx;
            }
            s.next += 1;
            let n = s.next;
            out["id"] = json!(n);
            if let Some(token) = out
                .pointer_mut("/params/_meta/progressToken")
                .map(std::mem::take)
            {
                let ours = format!("gw-{n}");
                s.progress.insert(ours.clone(), (n, token));
                out["params"]["_meta"]["progressToken"] = json!(ours);
            }
            s.pending.insert(
                n,
                Pending {
                    session: session.clone(),
                    id: msg["id"].clone(),
                    outbox: tx,
                },
            );
        }
        self.send(&out);
        rx
    }

    /// A client's notification: `initialized` is the adapter's to send (once), a cancellation
    /// is translated to the process's id (and dropped when the request is not the client's).
    pub fn notify(&self, session: &Arc<str>, msg: &Value) {
        match msg["method"].as_str() {
            Some("notifications/initialized") => {}
            Some("notifications/cancelled") => {
                let theirs = &msg["params"]["requestId"];
                let found = {
                    let mut s = self.lock();
                    let n = (s.pending.iter())
                        .find(|(_, p)| p.session == *session && &p.id == theirs)
                        .map(|(n, _)| *n);
                    // A cancelled request is not answered: its stream ends here.
                    if let Some(n) = n {
                        s.pending.remove(&n);
                        s.progress.retain(|_, (r, _)| *r != n);
                    }
                    n
                };
                if let Some(n) = found {
                    let mut out = msg.clone();
                    out["params"]["requestId"] = json!(n);
                    self.send(&out);
                }
            }
            _ => self.send(msg),
        }
    }

    /// A client's answer to a request of the process's: sent back under the process's id.
    pub fn respond(&self, session: &Arc<str>, msg: &Value) {
        let Some(ours) = msg["id"].as_str() else {
            return;
        };
        let found = self.lock().asked.remove(ours);
        if let Some((_, child_id)) = found.filter(|(owner, _)| owner == session) {
            let mut out = msg.clone();
            out["id"] = child_id;
            self.send(&out);
        }
    }

    /// One message received from the process.
    pub fn received(&self, msg: Value) {
        let has_id = msg.get("id").is_some_and(|i| !i.is_null());
        match (msg.get("method").and_then(Value::as_str), has_id) {
            (None, true) => self.answer(msg),
            (Some("ping"), true) => {
                self.send(&json!({"jsonrpc": "2.0", "id": msg["id"], "result": {}}));
            }
            (Some(_), true) => self.ask_client(msg),
            (Some("notifications/progress"), false) => self.progress(msg),
            (Some(_), false) => self.broadcast(msg),
            (None, false) => {
                tracing::debug!("a message from the stdio server with no method or id")
            }
        }
    }

    fn answer(&self, mut msg: Value) {
        let Some(n) = msg["id"].as_u64() else {
            tracing::warn!("the stdio server answered an id the adapter never sent");
            return;
        };
        let pending = {
            let mut s = self.lock();
            s.progress.retain(|_, (r, _)| *r != n);
            s.pending.remove(&n)
        };
        if let Some(p) = pending {
            msg["id"] = p.id;
            let _ = p.outbox.send(msg);
        }
    }

    fn progress(&self, mut msg: Value) {
        let token = msg["params"]["progressToken"].as_str().map(str::to_string);
        let s = self.lock();
        let Some((n, theirs)) = token.and_then(|t| s.progress.get(&t)) else {
            return;
        };
        if let Some(p) = s.pending.get(n) {
            msg["params"]["progressToken"] = theirs.clone();
            let _ = p.outbox.send(msg);
        }
    }

    fn broadcast(&self, msg: Value) {
        let s = self.lock();
        for stream in s.sessions.values().filter_map(|s| s.stream.as_ref()) {
            let _ = stream.send(msg.clone());
        }
    }

    fn ask_client(&self, mut msg: Value) {
        let method = msg["method"].as_str().unwrap_or("").to_string();
        let mut s = self.lock();
        let capable = |id: &Arc<str>| s.sessions.get(id).is_some_and(|c| c.can_answer(&method));
        // The most recent request still in flight of a client that can answer says whose work
        // this is; else a capable client listening on GET.
        let by_request = (s.pending.iter())
            .filter(|(_, p)| !p.session.is_empty() && capable(&p.session))
            .max_by_key(|(n, _)| **n)
            .map(|(_, p)| (p.session.clone(), p.outbox.clone()));
        let by_stream = || {
            (s.sessions.iter())
                .filter(|(_, c)| c.can_answer(&method))
                .find_map(|(id, c)| c.stream.as_ref().map(|o| (id.clone(), o.clone())))
        };
        let Some((session, outbox)) = by_request.or_else(by_stream) else {
            drop(s);
            self.send(&json!({"jsonrpc": "2.0", "id": msg["id"],
                "error": {"code": -32601, "message": "no connected client offers this"}}));
            return;
        };
        s.next += 1;
        let ours = format!("gw-{}", s.next);
        s.asked
            .insert(ours.clone(), (session, std::mem::take(&mut msg["id"])));
        msg["id"] = json!(ours);
        let _ = outbox.send(msg);
    }

    /// The process exited: every request still in flight is answered with an error now.
    pub fn child_gone(&self) {
        let pending: Vec<Pending> = {
            let mut s = self.lock();
            s.gone = true;
            s.progress.clear();
            s.pending.drain().map(|(_, p)| p).collect()
        };
        let (code, message) = PROCESS_GONE;
        for p in pending {
            let _ = p.outbox.send(json!({"jsonrpc": "2.0", "id": p.id,
                "error": {"code": code, "message": message}}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mux() -> (Arc<Mux>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Mux::new(tx)), rx)
    }

    fn sent(rx: &mut mpsc::UnboundedReceiver<String>) -> Value {
        serde_json::from_str(&rx.try_recv().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn two_clients_with_the_same_ids_and_tokens_get_their_own_answers() {
        let (m, mut child) = mux();
        let (a, b) = (m.open_session(&json!({})), m.open_session(&json!({})));
        let call = |token: &str| {
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"t","_meta":{"progressToken":token}}})
        };
        let mut ra = m.request(&a, &call("p"));
        let mut rb = m.request(&b, &call("p"));
        let (ca, cb) = (sent(&mut child), sent(&mut child));
        assert_ne!(ca["id"], cb["id"]);
        assert_ne!(
            ca["params"]["_meta"]["progressToken"],
            cb["params"]["_meta"]["progressToken"]
        );
        m.received(json!({"jsonrpc":"2.0","method":"notifications/progress",
            "params":{"progressToken": cb["params"]["_meta"]["progressToken"], "progress": 1}}));
        m.received(json!({"jsonrpc":"2.0","id": cb["id"], "result": {"who":"b"}}));
        m.received(json!({"jsonrpc":"2.0","id": ca["id"], "result": {"who":"a"}}));
        let p = rb.recv().await.unwrap();
        assert_eq!(p["params"]["progressToken"], "p");
        assert_eq!(
            rb.recv().await.unwrap(),
            json!({"jsonrpc":"2.0","id":1,"result":{"who":"b"}})
        );
        assert!(
            rb.recv().await.is_none(),
            "the stream ends after the answer"
        );
        assert_eq!(ra.recv().await.unwrap()["result"]["who"], "a");
    }

    #[tokio::test]
    async fn a_client_cancels_only_its_own_request_and_a_dead_process_answers_all() {
        let (m, mut child) = mux();
        let (a, b) = (m.open_session(&json!({})), m.open_session(&json!({})));
        let mut ra = m.request(&a, &json!({"jsonrpc":"2.0","id":"x","method":"tools/call"}));
        let ca = sent(&mut child);
        m.notify(
            &b,
            &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x"}}),
        );
        assert!(child.try_recv().is_err(), "b cannot cancel a's request");
        m.notify(
            &a,
            &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x"}}),
        );
        assert_eq!(sent(&mut child)["params"]["requestId"], ca["id"]);
        assert!(
            ra.recv().await.is_none(),
            "a cancelled request's stream ends"
        );
        let mut rb = m.request(&b, &json!({"jsonrpc":"2.0","id":"y","method":"tools/call"}));
        m.child_gone();
        let e = rb.recv().await.unwrap();
        assert_eq!(e["id"], "y");
        assert_eq!(e["error"]["code"], -32008);
    }

    #[tokio::test]
    async fn a_request_of_the_process_goes_to_the_client_at_work_and_back() {
        let (m, mut child) = mux();
        let (_idle, busy) = (
            m.open_session(&json!({})),
            m.open_session(&json!({"sampling": {}})),
        );
        let mut rb = m.request(
            &busy,
            &json!({"jsonrpc":"2.0","id":7,"method":"tools/call"}),
        );
        let _ = sent(&mut child);
        m.received(
            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}),
        );
        let asked = rb.recv().await.unwrap();
        assert_eq!(asked["method"], "sampling/createMessage");
        m.respond(
            &busy,
            &json!({"jsonrpc":"2.0","id": asked["id"], "result": {"ok": true}}),
        );
        assert_eq!(
            sent(&mut child),
            json!({"jsonrpc":"2.0","id":"s1","result":{"ok":true}})
        );
        m.received(json!({"jsonrpc":"2.0","id":9,"method":"ping"}));
        assert_eq!(sent(&mut child)["result"], json!({}));
    }
}
