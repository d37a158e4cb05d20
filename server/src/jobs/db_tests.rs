//! Tests of the queue's SQL on an embedded database: claims, leases,
//! conditional ends, cancellation, purging.
use super::*;

async fn queue() -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.sqlite").display());
    (dir, Queue::open(&url).await.unwrap())
}

fn job(id: &str, labels: &[(&str, &str)], now_ms: i64) -> NewJob {
    NewJob {
        id: id.into(),
        spec: vec![1, 2, 3],
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        idempotency_key: None,
        now_ms,
    }
}

#[tokio::test]
async fn claims_take_the_oldest_once_and_expired_leases_are_claimed_again() {
    let (_d, q) = queue().await;
    q.insert(job("a", &[], 10)).await.unwrap();
    q.insert(job("b", &[("k", "v")], 20)).await.unwrap();
    let a = q.claim("r1", 100, 1100).await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.attempts, a.started_ms), ("a", 1, 100));
    let b = q.claim("r2", 100, 1100).await.unwrap().unwrap();
    assert_eq!(b.id, "b");
    assert!(q.claim("r3", 100, 1100).await.unwrap().is_none());
    // r1 keeps its lease; r2's runs out and r3 takes b.
    assert!(q.renew("a", "r1", 5000).await.unwrap());
    let again = q.claim("r3", 2000, 3000).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("b", 2));
    // r2 can no longer end it; r3 can, once.
    assert!(
        !q.finish("b", "r2", state::SUCCEEDED, Some("{}"), 0, "", 2100)
            .await
            .unwrap()
    );
    assert!(
        q.finish("b", "r3", state::SUCCEEDED, Some("{}"), 0, "", 2100)
            .await
            .unwrap()
    );
    assert!(
        !q.finish("b", "r3", state::FAILED, None, 2, "x", 2200)
            .await
            .unwrap()
    );
    assert_eq!(q.get("b").await.unwrap().unwrap().state, state::SUCCEEDED);
    // Cancelled while running: its owner's updates are refused.
    assert!(q.cancel("a", 2300).await.unwrap());
    assert!(!q.progress("a", "r1", "x", 0.5).await.unwrap());
    assert!(!q.holds("a", "r1").await.unwrap());
    assert!(
        !q.cancel("a", 2400).await.unwrap(),
        "an ended job stays as it ended"
    );
}

#[tokio::test]
async fn ended_jobs_past_the_retention_are_purged_with_their_labels() {
    let (_d, q) = queue().await;
    q.insert(job("old", &[("k", "v")], 10)).await.unwrap();
    q.insert(job("queued", &[("k", "v")], 20)).await.unwrap();
    q.claim("r", 30, 1000).await.unwrap().unwrap();
    q.finish("old", "r", state::SUCCEEDED, Some("{}"), 0, "", 40)
        .await
        .unwrap();
    assert_eq!(q.purge(40).await.unwrap(), 0, "ended at 40: not before 40");
    assert_eq!(q.purge(41).await.unwrap(), 1);
    assert!(q.get("old").await.unwrap().is_none());
    // The queued job stays, and label filters still find it.
    let f = ListFilter {
        labels: [("k".to_string(), "v".to_string())].into(),
        limit: 10,
        ..ListFilter::default()
    };
    let ids: Vec<String> = q
        .list(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["queued"]);
}
