//! `comet forward`: ship a data directory's durable entries to NATS
//! JetStream as a consumer group, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use comet::{Client, Config};
use comet_forward::{Auth, Backoff, ForwardConfig, Forwarder, Secret, StreamSetup};

/// Environment variable holding the password for `--user`.
const ENV_PASSWORD: &str = "COMET_NATS_PASSWORD";
/// Environment variable holding a token.
const ENV_TOKEN: &str = "COMET_NATS_TOKEN";

/// Arguments of `comet forward`.
#[derive(clap::Args, Debug)]
pub(crate) struct ForwardArgs {
    /// Data directory.
    dir: PathBuf,
    /// Consumer group whose offsets record what JetStream acknowledged
    /// (1 to 47 bytes).
    #[arg(long)]
    group: String,
    /// Server URL(s), comma-separated: nats://host:4222, tls://host:4222.
    #[arg(long, value_name = "URL")]
    nats: String,
    /// Subject prefix: entries of shard N go to PREFIX.N. Message ids carry
    /// the data directory's identity (comet.id), so prefixes may be shared.
    #[arg(long, value_name = "PREFIX")]
    subject: String,
    /// Streams to forward: a stream name, a pattern with `*`/`?` in the
    /// shard part (events:v1:shard:*), shard ids or ranges (0-3,7). Default:
    /// all shards.
    #[arg(long, value_name = "PATTERN")]
    stream: Option<String>,
    /// Create this JetStream stream, capturing PREFIX.>, if it is missing.
    #[arg(long, value_name = "NAME")]
    create_stream: Option<String>,
    /// Duplicate window of a stream made by --create-stream, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    dedup_window: u64,
    /// Replicas of a stream made by --create-stream.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    replicas: u64,
    /// Entries published before waiting for their acknowledgements.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=comet_forward::MAX_BATCH_SIZE as u64))]
    batch: u64,
    /// Longest wait between retries while the server is unreachable, in
    /// seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    max_backoff: u64,
    /// A .creds file (JWT and nkey seed).
    #[arg(long, value_name = "FILE")]
    creds: Option<PathBuf>,
    /// A file holding an nkey seed.
    #[arg(long, value_name = "FILE")]
    nkey_file: Option<PathBuf>,
    /// User name; the password comes from $COMET_NATS_PASSWORD. (A token
    /// comes from $COMET_NATS_TOKEN.) Secrets never go on the command line.
    #[arg(long)]
    user: Option<String>,
    /// Refuse servers without TLS.
    #[arg(long)]
    tls_required: bool,
    /// A PEM file of CA certificates to trust (repeatable).
    #[arg(long, value_name = "FILE")]
    tls_ca: Vec<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS; needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Start TLS before the server's greeting (servers with handshake_first).
    #[arg(long)]
    tls_first: bool,
    /// Print the metrics to stderr every SECS seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    stats_every: u64,
}

fn auth(args: &ForwardArgs) -> Result<Auth, Box<dyn std::error::Error>> {
    let password = std::env::var(ENV_PASSWORD).ok();
    let token = std::env::var(ENV_TOKEN).ok();
    let chosen = [args.creds.is_some(), args.nkey_file.is_some(), args.user.is_some(), token.is_some()];
    if chosen.iter().filter(|&&c| c).count() > 1 {
        return Err("use one of --creds, --nkey-file, --user and $COMET_NATS_TOKEN".into());
    }
    if let Some(path) = &args.creds {
        return Ok(Auth::CredentialsFile(path.clone()));
    }
    if let Some(path) = &args.nkey_file {
        let seed = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok(Auth::NKey(Secret::new(seed.trim())));
    }
    if let Some(user) = &args.user {
        let password = password.ok_or(format!("--user needs the password in ${ENV_PASSWORD}"))?;
        return Ok(Auth::UserPassword { user: user.clone(), password: Secret::new(password) });
    }
    Ok(token.map_or(Auth::None, |t| Auth::Token(Secret::new(t))))
}

fn config(args: &ForwardArgs) -> Result<ForwardConfig, Box<dyn std::error::Error>> {
    let mut c = ForwardConfig::new(&args.group, &args.nats, &args.subject);
    if let Some(p) = &args.stream {
        // The grammar and messages of the other subcommands' --stream.
        c.shards = comet_forward::ShardSelect::from(&comet::ShardPattern::parse(p)?);
    }
    if let Some(name) = &args.create_stream {
        let mut s = StreamSetup::new(name);
        s.duplicate_window = Duration::from_secs(args.dedup_window);
        s.replicas = usize::try_from(args.replicas)?;
        c.stream = Some(s);
    }
    c.batch_size = usize::try_from(args.batch)?;
    c.backoff = Backoff { max: Duration::from_secs(args.max_backoff), ..Backoff::default() };
    c.auth = auth(args)?;
    c.tls.required = args.tls_required;
    c.tls.root_certificates.clone_from(&args.tls_ca);
    c.tls.client_certificate = args.tls_cert.clone().zip(args.tls_key.clone());
    c.tls.handshake_first = args.tls_first;
    Ok(c)
}

/// Runs `comet forward`; returns the exit code.
pub(crate) fn run(args: &ForwardArgs) -> Result<u8, Box<dyn std::error::Error>> {
    comet_forward::log_to_stderr();
    let config = config(args)?;
    // The forwarder may start before the writer ever ran.
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let client = Client::open_read_only(&args.dir, Config::default())?;
    let mut forwarder = Forwarder::new(&client, config)?;
    let metrics = forwarder.metrics();

    let done = Arc::new(AtomicBool::new(false));
    let reporter = (args.stats_every > 0).then(|| {
        let (metrics, done, every) = (metrics.clone(), done.clone(), Duration::from_secs(args.stats_every));
        std::thread::spawn(move || {
            let mut waited = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
                if waited >= every {
                    waited = Duration::ZERO;
                    eprintln!("comet forward: {}", metrics.snapshot());
                }
            }
        })
    });
    let result = forwarder.run_blocking(comet_forward::shutdown_signal());
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let last = result?;
    eprintln!("comet forward: stopped; {last}");
    // Shards that stopped at an entry that cannot be forwarded while others
    // went on: the run did not do everything it was asked.
    let mut code = 0;
    for (shard, why) in forwarder.stopped_shards() {
        eprintln!("comet forward: shard {} stopped: {}", shard.get(), comet::ErrorChain(why));
        code = 1;
    }
    Ok(code)
}
