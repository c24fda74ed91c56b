use sessions::handler;

struct Database;

#[handler]
async fn index(db: Database) {
    let _ = db;
}

fn main() {}
