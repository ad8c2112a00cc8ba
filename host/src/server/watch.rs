//! Hot swap: watching the component folders and republishing the registry once changes settle.

use crate::AppState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(100);
/// ...and its size and modification time hold still over this much longer (a slow copy).
const SETTLE: Duration = Duration::from_millis(40);

/// Hot swap: watches the built-in folder and `componentsRoot`; after a burst of changes has
/// settled, rebuilds the registry from the previous one (unchanged files reused, a failing
/// file keeps its previous version) and publishes it atomically. Calls in flight finish on
/// the version they started with. Returns None (and logs) when watching is unavailable.
pub(super) fn watch_components(state: &Arc<AppState>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)) {
                for path in event.paths.into_iter().filter(|p| crate::registry::is_component_file(p)) {
                    let _ = tx.send(path);
                }
            }
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the component folders, hot swap is off until restart: {e}");
            return None;
        }
    };
    let settings = state.settings.load();
    for dir in [&state.builtin_dir, &settings.components_root] {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {}: {e}", dir.display());
        }
    }
    let state = state.clone();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = std::collections::BTreeSet::from([first]);
            loop {
                // Debounce: wait for a quiet moment, then for the files to hold still.
                while let Ok(Some(path)) = tokio::time::timeout(QUIET, rx.recv()).await {
                    changed.insert(path);
                }
                let before: Vec<_> = changed.iter().map(|p| file_stamp(p)).collect();
                tokio::time::sleep(SETTLE).await;
                let after: Vec<_> = changed.iter().map(|p| file_stamp(p)).collect();
                if before == after && rx.is_empty() {
                    break;
                }
            }
            let started = Instant::now();
            let _reloading = state.reload.lock().await;
            let loader = state.clone();
            let previous = state.registry.load_full();
            match tokio::task::spawn_blocking(move || loader.load_registry(Some(&previous))).await {
                Ok(next) => {
                    state.publish(next);
                    tracing::info!("hot swap of {} file(s) published in {:?}", changed.len(), started.elapsed());
                }
                Err(e) => tracing::error!("hot swap failed, the previous operations keep serving: {e}"),
            }
        }
    });
    Some(watcher)
}

pub(super) fn file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
