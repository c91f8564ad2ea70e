//! The behaviour every store must show, written once against the trait; each store's
//! tests run it on a fresh instance.

use crate::id::SessionId;
use crate::session::Patch;
use crate::store::SessionStore;

fn id(name: &str) -> SessionId {
    SessionId::parse(&format!("conformance-{name}")).unwrap()
}

async fn data(store: &dyn SessionStore, id: &SessionId, now: i64) -> Option<serde_json::Value> {
    let record = store.load(id, now).await.unwrap()?;
    Some(serde_json::from_str(&record.data).unwrap())
}

pub async fn check(store: &dyn SessionStore) {
    let now = 1_000_000;
    let a = id("a");
    store.destroy(&a).await.unwrap();
    assert!(
        store.load(&a, now).await.unwrap().is_none(),
        "missing is None"
    );

    // create when missing, then merge only the changed keys
    let patch = Patch::of(&[("x", "1"), ("y", r#""two""#)], 1_000);
    store.apply_patch(&a, &patch, now).await.unwrap();
    let patch = Patch::of(&[("y", "null"), ("z", "[3]")], 1_000);
    store.apply_patch(&a, &patch, now).await.unwrap();
    assert_eq!(
        data(store, &a, now + 1).await.unwrap(),
        serde_json::json!({"x": 1, "z": [3]})
    );
    let record = store.load(&a, now + 1).await.unwrap().unwrap();
    assert_eq!(record.expires_at_ms, now + 1_000);
    assert_eq!(record.max_age_ms, 1_000);

    // exact expiry (G6), whatever gc has done
    assert!(store.load(&a, now + 999).await.unwrap().is_some());
    assert!(store.load(&a, now + 1_000).await.unwrap().is_none());

    // a patch on an expired record starts from nothing
    let b = id("b");
    let patch = Patch::of(&[("old", "true")], 10);
    store.apply_patch(&b, &patch, now).await.unwrap();
    let patch = Patch::of(&[("new", "true")], 1_000);
    store.apply_patch(&b, &patch, now + 20).await.unwrap();
    assert_eq!(
        data(store, &b, now + 21).await.unwrap(),
        serde_json::json!({"new": true})
    );

    // touch refreshes a live record only
    assert!(store.touch(&b, 5_000, now + 500).await.unwrap());
    assert_eq!(
        store
            .load(&b, now + 501)
            .await
            .unwrap()
            .unwrap()
            .expires_at_ms,
        now + 5_500
    );
    assert!(!store.touch(&id("never"), 5_000, now).await.unwrap());

    // rename moves the record whole, expiry included, and leaves the old id with none
    let c = id("c");
    store.destroy(&c).await.unwrap();
    assert!(store.rename(&b, &c, now + 501).await.unwrap());
    assert!(store.load(&b, now + 502).await.unwrap().is_none());
    let moved = store.load(&c, now + 502).await.unwrap().unwrap();
    assert_eq!(moved.expires_at_ms, now + 5_500);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&moved.data).unwrap(),
        serde_json::json!({"new": true})
    );
    assert!(!store.rename(&b, &id("d"), now + 502).await.unwrap());
    assert!(store.load(&id("d"), now + 502).await.unwrap().is_none());
    store
        .apply_patch(&b, &Patch::of(&[("b", "1")], 1_000), now + 502)
        .await
        .unwrap();
    store.destroy(&c).await.unwrap();

    // destroy, twice
    store.destroy(&b).await.unwrap();
    store.destroy(&b).await.unwrap();
    assert!(store.load(&b, now + 502).await.unwrap().is_none());
}

/// For stores whose gc does the expiring (Redis expires keys by itself).
pub async fn check_gc(store: &dyn SessionStore) {
    let now = 1_000_000;
    // gc removes the expired and keeps the live
    let live = id("live");
    let dead = id("dead");
    let patch = Patch::of(&[("k", "1")], 100_000);
    store.apply_patch(&live, &patch, now).await.unwrap();
    let patch = Patch::of(&[("k", "1")], 10);
    store.apply_patch(&dead, &patch, now).await.unwrap();
    let removed = store.gc(now + 50_000).await.unwrap();
    assert!(removed >= 1, "gc removed {removed}");
    assert!(store.load(&live, now + 50_000).await.unwrap().is_some());
    assert!(
        store.load(&dead, now).await.unwrap().is_none(),
        "gc removed it"
    );
}
