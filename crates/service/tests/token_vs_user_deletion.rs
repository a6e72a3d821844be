//! A token requested while its user is being deleted (issue #16, item 2): the password check takes
//! a while, and a deletion landing in it must not leave a token behind. Whatever the interleaving,
//! the deleted user has no valid token; the store's conformance suite races the two store calls
//! themselves on both backends, this drives the service's `issue_token` against `delete_user`.

use std::sync::Arc;
use std::time::Duration;

use jobd_auth::identity::Role;
use jobd_auth::secrets::MasterKey;
use jobd_service::identity::{IdentityConfig, IdentityError, IdentityService, ProjectSelector};
use jobd_service::SystemClock;
use jobd_store::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_requested_while_its_user_is_deleted_does_not_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let identity = IdentityService::new(
        store,
        Arc::new(SystemClock),
        MasterKey::derive(b"test master key"),
        None,
        IdentityConfig::default(),
    );
    let project = identity.create_project("racing").await.unwrap();
    let (mut refused, mut revoked) = (0, 0);
    for round in 0..8u64 {
        let name = format!("user-{round}");
        let user =
            identity.create_user(&name, "acme", "a long password", &project.id, Role::Reader, &[]).await.unwrap();
        let issuing = tokio::spawn({
            let (identity, project_id) = (identity.clone(), project.id.clone());
            async move { identity.issue_token("acme", &name, "a long password", ProjectSelector::Id(project_id)).await }
        });
        let deleting = tokio::spawn({
            let identity = identity.clone();
            async move {
                // From at once to well into the password check.
                tokio::time::sleep(Duration::from_millis(round * 40)).await;
                identity.delete_user(&user.user_id).await
            }
        });
        let issued = issuing.await.unwrap();
        deleting.await.unwrap().unwrap();
        match issued {
            Ok(issued) => {
                let resolved = identity.resolve_token(&issued.token).await;
                assert!(resolved.is_err(), "round {round}: a token of the deleted user still works");
                revoked += 1;
            }
            Err(IdentityError::BadPassword) => refused += 1,
            Err(other) => panic!("round {round}: {other}"),
        }
    }
    println!("issued then revoked: {revoked}, refused: {refused}");
}
