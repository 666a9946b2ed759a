#![allow(unused)]
fn old(user_id: &str, pair: (u32, u32)) -> u32 {
    0
}

#[vexil_client::feature_flag("new_dashboard", user = user_id, fallback = old)]
fn dashboard(user_id: &str, (a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
