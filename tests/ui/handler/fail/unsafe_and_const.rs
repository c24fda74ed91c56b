use sessions::handler;

#[handler]
unsafe fn first() {}

#[handler]
const fn second() {}

fn main() {}
