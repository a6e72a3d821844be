//! The store conformance suite on the embedded SQLite backend, plus what only a file can show.

use std::sync::Arc;

use jobd_store::{JobStore, SqliteStore};
use jobd_test_support::store_conformance::{at, SharedStore};

async fn fresh_store() -> SharedStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    // Keep the directory for the life of the test process; each test has its own.
    std::mem::forget(dir);
    Arc::new(store)
}

jobd_test_support::store_conformance_tests!(fresh_store);

#[tokio::test]
async fn writes_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let project = jobd_core::ProjectId::parse("abc").unwrap();
    let job = jobd_core::NewJob::new(
        project.clone(),
        jobd_core::ServiceName::parse("cfw").unwrap(),
        jobd_core::JobType::parse("createFirewall").unwrap(),
    )
    .into_job(at(0))
    .unwrap();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.insert_job(&job, None).await.unwrap();
        store.apply_event(&project, &job.job_id, &jobd_core::JobEvent::Cancel, at(1)).await.unwrap();
    }
    let reopened = SqliteStore::open(dir.path()).await.unwrap();
    let stored = reopened.get_job(&project, &job.job_id).await.unwrap().unwrap();
    assert_eq!(stored.status, jobd_core::JobStatus::Cancelled);
    assert!(dir.path().join(jobd_store::sqlite::DATABASE_FILE).exists());
}

#[tokio::test]
async fn one_process_serves_a_data_directory_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).await.unwrap();
    let second = SqliteStore::open(dir.path()).await.err().expect("a second store on the same directory is refused");
    assert!(second.to_string().contains("in use by another jobd"), "{second}");
    drop(first);
    SqliteStore::open(dir.path()).await.expect("free again once the first store is closed");
}
