#![allow(unused)]
#[vexil_client::feature_flag("new dashboard!", user = user_id)]
fn dashboard(user_id: &str) -> bool {
    true
}

fn main() {}
