#![allow(unused)]
fn old(user_id: &str) -> u32 {
    0
}

#[vexil_client::feature_flag("new_dashboard", user = user_id, fallback = old)]
fn dashboard(user_id: &str, page: u32) -> u32 {
    page
}

fn main() {}
