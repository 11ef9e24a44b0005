/*
 * server.h: the HTTP server of tierdb (docs/api.md), as the CLI sees it.
 * Layer: server. The server speaks only through tierdb.h to the database;
 * it never touches files (DESIGN.md "Layers").
 *
 * Lifecycle, driven by the CLI's `serve` command:
 *
 *     server_start ──> STARTING ──server_attach_db──> READY
 *                                                       │ server_quiesce (first SIGTERM/SIGINT)
 *                                                       v
 *                      server_destroy <──server_wait_idle── STOPPING
 *
 *   - STARTING: the socket is bound (so the real port of ":0" is known) but
 *     the database is not open yet; /health answers 503 {"status":"starting"}
 *     and every other route 503.
 *   - READY: every route is served.
 *   - STOPPING: no new connections are accepted; requests already running
 *     finish; a new request on a kept-alive connection gets 503 (and /health
 *     {"status":"stopping"}) with "Connection: close".
 * After server_destroy returns no request is running and none will start,
 * so the caller may tdb_close the database.
 */
#ifndef TDB_SERVER_SERVER_H
#define TDB_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierdb.h"

/* Default largest request body: API.md's errors list a 413 for bodies over
 * 64 MiB, big enough for an upsert batch of ~10k 768-d vectors in JSON. */
#define SERVER_DEFAULT_MAX_BODY_BYTES (64ull << 20)

typedef struct server_config {
    const char *host;            /* address to bind: IPv4/IPv6 literal or a name ("localhost") */
    uint16_t port;               /* 0: the kernel picks a free port (see server_port) */
    uint64_t max_body_bytes;     /* larger request bodies get 413; 0 means the default */
    const char *api_key;         /* NULL or "": auth off */
    const char *readonly_api_key; /* NULL or "": no read-only key */
    bool test_clock;             /* expose POST /v1/debug/clock */
} server_config;

typedef struct server server;

/* Binds the listening socket and starts answering (STARTING). Strings of
 * cfg are copied. On failure *out is NULL and err says why (e.g. the
 * address is in use). Free with server_destroy. */
int server_start(const server_config *cfg, server **out, tdb_error *err);
/* The port actually bound (the kernel's choice when cfg->port was 0). */
uint16_t server_port(const server *srv);
/* Hands the open database to the server and starts serving (READY). The
 * server borrows db: the caller closes it after server_destroy. */
void server_attach_db(server *srv, tdb_db *db);
/* Stops accepting connections (STOPPING); running requests go on. */
void server_quiesce(server *srv);
/* Waits until no request is running or timeout_ms passed; true if idle. */
bool server_wait_idle(server *srv, uint64_t timeout_ms);
/* Stops the daemon (closing idle kept-alive connections, joining their
 * threads) and frees srv. NULL is a no-op. */
void server_destroy(server *srv);

#endif
