//! Waits that watch: every version of an object that the API server reports, in order, instead of a sample
//! every so often that can miss a short-lived state.

use std::{collections::VecDeque, fmt::Debug, time::Duration};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, stream::BoxStream};
use kube::{
    Api, Resource,
    runtime::{WatchStreamExt as _, watcher},
};
use serde::{Serialize, de::DeserializeOwned};

/// A watch of one object by name. Started before the object exists, it sees its creation too.
///
/// kube's watcher resumes a broken watch from the last resourceVersion, so no write is lost; only when
/// the API server has compacted that version away does it list again, and then versions in between may
/// be missing: [`ObjectWatch::until`] fails rather than pretend it saw them all.
pub struct ObjectWatch<K> {
    name: String,
    events: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
    /// Versions received but not handed out yet (the initial listing).
    pending: VecDeque<K>,
    last: Option<K>,
}

impl<K> ObjectWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + 'static,
{
    /// Lists the object (if it exists) and returns once the watch is established, so every write after
    /// this call is seen.
    pub async fn start(api: Api<K>, name: &str) -> anyhow::Result<ObjectWatch<K>> {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut watch = ObjectWatch {
            name: name.to_string(),
            events: watcher(api, config).default_backoff().boxed(),
            pending: VecDeque::new(),
            last: None,
        };
        loop {
            match watch.events.next().await {
                Some(Ok(watcher::Event::Init)) => {}
                Some(Ok(watcher::Event::InitApply(object))) => watch.pending.push_back(object),
                Some(Ok(watcher::Event::InitDone)) => return Ok(watch),
                Some(Ok(event)) => {
                    bail!("unexpected watch event before the listing ended: {event:?}")
                }
                // The watcher retries with back-off; a lasting error shows as the caller's timeout.
                Some(Err(e)) => tracing::debug!(name, "watch error: {e}"),
                None => bail!("the watch of {name} ended"),
            }
        }
    }

    /// The next version of the object: the current one first, then one per write. `None` when it is
    /// deleted.
    pub async fn next(&mut self) -> anyhow::Result<Option<K>> {
        if let Some(object) = self.pending.pop_front() {
            self.last = Some(object.clone());
            return Ok(Some(object));
        }
        loop {
            match self.events.next().await {
                Some(Ok(watcher::Event::Apply(object))) => {
                    self.last = Some(object.clone());
                    return Ok(Some(object));
                }
                Some(Ok(watcher::Event::Delete(_))) => return Ok(None),
                Some(Ok(watcher::Event::Init)) => bail!(
                    "the watch of {} had to list again; writes in between may have been missed",
                    self.name
                ),
                Some(Ok(watcher::Event::InitApply(_) | watcher::Event::InitDone)) => {}
                Some(Err(e)) => tracing::debug!(name = self.name, "watch error: {e}"),
                None => bail!("the watch of {} ended", self.name),
            }
        }
    }

    /// Hands every version to `check` until it returns `Some`, and returns that. Fails after `timeout`,
    /// naming `what` and showing the last version seen.
    pub async fn until<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&K) -> Option<T>,
    ) -> anyhow::Result<T> {
        let name = self.name.clone();
        let found = tokio::time::timeout(timeout, async {
            loop {
                match self.next().await? {
                    Some(object) => {
                        if let Some(value) = check(&object) {
                            return anyhow::Ok(value);
                        }
                    }
                    None => bail!("{name} was deleted"),
                }
            }
        })
        .await;
        match found {
            Ok(result) => result.with_context(|| format!("waiting for {what}")),
            Err(_) => bail!(
                "timed out after {timeout:?} waiting for {what}; the last version of {name} seen:\n{}",
                self.last
                    .as_ref()
                    .and_then(|o| serde_json::to_string_pretty(o).ok())
                    .unwrap_or_else(|| "(none)".into())
            ),
        }
    }
}
