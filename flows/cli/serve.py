"""``flowrl serve``: the store's pictures for browsers (the Prefect UI's image artifacts)."""

from __future__ import annotations

import typer

from flows.cli.app import ExitCode, app, err, fail, out


@app.command()
def serve(
    store: str = typer.Argument("./flowrl-store", help="Store URL (a local folder is the usual case)."),
    port: int = typer.Option(8765, min=0, max=65535, help="Port (0: any free port). Links use FLOWRL_SERVE_URL, "
                             "default http://127.0.0.1:8765."),
    host: str = typer.Option("127.0.0.1", help="Bind address. There is no authentication: anything but a "
                             "loopback address exposes the store (read-only) to the network."),
) -> None:
    """Serve STORE read-only over HTTP so the pictures the flows link load in a browser."""
    from flowrl_core.reporting.links import SERVE_URL_ENV
    from flowrl_core.reporting.serve import make_server
    from flowrl_core.store.objects import Store

    st = Store(store, create=False)
    try:
        server = make_server(st, host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
             f"(and set {SERVE_URL_ENV} to match before running flows)")
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}"
    out.print(f"serving {st.url} read-only at {url} (Ctrl-C stops)", highlight=False, soft_wrap=True)
    if bound_port != 8765:
        out.print(f"flows write picture links for {SERVE_URL_ENV} (default http://127.0.0.1:8765); "
                  f"run them with {SERVE_URL_ENV}={url}", highlight=False, soft_wrap=True)
    out.file.flush()  # a supervisor reading our stdout through a pipe learns the URL now
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err.print("stopped")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        server.server_close()
