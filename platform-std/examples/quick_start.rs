use comet::{Client, Config};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path(), Config::default())?;

    // Append to shard 7; entry numbers come back at once.
    let ids = client.append("events:v1:shard:0007", &[b"log line".as_slice(), b"metric"])?;
    assert_eq!(ids.entries, 0..2);

    // Entries become visible when durable: on sync(), on the periodic flush
    // (default every second), when a write buffer fills, and on close.
    client.sync()?;

    let mut reader = client.reader(ids.shard)?;
    let entry = reader.read(0)?;
    assert_eq!(entry.data(), b"log line");
    println!("entry {} of shard {}: {:?}", entry.id.entry, entry.id.shard, String::from_utf8_lossy(entry.data()));
    client.close()?;
    Ok(())
}
