//! kmsctl — `aws kms`-style command line for keyraft; see [`client::cli`].

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmsctl: cannot start the async runtime: {e}");
            std::process::exit(client::cli::EXIT_OTHER_ERROR);
        }
    };
    let code = runtime.block_on(client::cli::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ));
    std::process::exit(code);
}
