//! Prints what a `segment_file` input decodes to (the built log's operations and mutations,
//! or the raw files), then runs the checks: `cargo run --example show_case -- FILE`.

use arbitrary::{Arbitrary, Unstructured};
use walden_log_fuzz::{check_case, decode_case, Built};

fn main() {
    let path = std::env::args().nth(1).expect("usage: show_case FILE");
    let data = std::fs::read(&path).expect("read input");
    if let Some((&tag, rest)) = data.split_first() {
        if tag & 0x80 != 0 {
            println!("{:#?}", Built::arbitrary_take_rest(Unstructured::new(rest)));
        }
    }
    let case = decode_case(&data).expect("input decodes");
    for (name, bytes) in &case.files {
        println!("{name}: {} bytes", bytes.len());
    }
    println!(
        "from: {}, oracle: {:?}",
        case.from,
        case.oracle
            .as_ref()
            .map(|o| (o.records.len(), o.durable, o.clean))
    );
    check_case(&case);
    println!("no failure");
}
