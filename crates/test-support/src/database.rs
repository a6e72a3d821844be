//! PostgreSQL test databases, for every test that needs one: a fresh database per test on the
//! server at `JOBD_TEST_DATABASE_URL` (default: the local one; its user must be allowed to
//! create databases), dropped after it: by hand (`create_test_database`, `drop_test_database`)
//! or when a [`TestDatabase`] is dropped. A server that cannot be reached fails the test with
//! what to do about it; nothing is skipped.

/// The test server when `JOBD_TEST_DATABASE_URL` is not set.
pub const DEFAULT_TEST_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL server tests make their databases on: `JOBD_TEST_DATABASE_URL`, or the local one.
pub fn test_server_url() -> String {
    std::env::var("JOBD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_SERVER.to_owned())
}

/// `url` with its database replaced (the query string, `sslmode` and all, is kept).
pub fn url_for_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A connection to `url`; panics saying what to do when the server cannot be reached (tests on
/// PostgreSQL are never skipped).
pub async fn connect_test_server(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
        .unwrap_or_else(|error| panic!("JOBD_TEST_DATABASE_URL is not a PostgreSQL URL ({error})"));
    sqlx::PgConnection::connect_with(&options).await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is unreachable at {}:{} as user {:?} ({error}). These tests need a server: start \
             one, or point JOBD_TEST_DATABASE_URL at a server whose user may CREATE DATABASE.",
            options.get_host(),
            options.get_port(),
            options.get_username(),
        )
    })
}

/// Creates `jobd_test_<random>` on the test server; answers its name and URL.
pub async fn create_test_database() -> (String, String) {
    use sqlx::{Connection, Executor};
    let name = format!("jobd_test_{}", uuid::Uuid::new_v4().simple());
    let mut server = connect_test_server(&test_server_url()).await;
    server
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|error| panic!("cannot create the test database {name}: {error}"));
    server.close().await.ok();
    let url = url_for_database(&test_server_url(), &name);
    (name, url)
}

/// Drops a test database, best effort (a leftover database is only clutter).
pub async fn drop_test_database(name: &str) {
    use sqlx::{Connection, Executor};
    let mut server = connect_test_server(&test_server_url()).await;
    let dropped = server.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
    if let Err(error) = dropped {
        eprintln!("could not drop the test database {name}: {error}");
    }
    server.close().await.ok();
}

/// `url` with one more query parameter (`application_name=node-1`, say).
pub fn with_parameter(url: &str, parameter: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
}

/// A database of its own on the shared test server, dropped when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let (name, url) = create_test_database().await;
        TestDatabase { name, url }
    }

    /// A connection to this database.
    pub async fn connect(&self) -> sqlx::PgConnection {
        connect_test_server(&self.url).await
    }
}

impl Drop for TestDatabase {
    /// Best effort (a leftover database is only clutter), on a thread of its own: this may run
    /// inside the test's runtime, which must not be blocked on.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(drop_test_database(&name));
        });
        let _ = dropping.join();
    }
}
