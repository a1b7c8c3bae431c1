/* SPDX-License-Identifier: MIT */
/* examples/chat_room.h - the chat servers' room (chat_server.c: futures;
 * chat_server_co.c: coroutines): clients, the registry that broadcasts to
 * them, and the splitting of a client's input into lines. See
 * chat_server.c for the design. */
#ifndef WEFT_EXAMPLES_CHAT_ROOM_H
#define WEFT_EXAMPLES_CHAT_ROOM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define LINE_MAX_BYTES 1024
#define QUEUE_CAP 256                  /* messages; ~270 KiB per client */

typedef struct message {
    uint32_t len;
    char text[LINE_MAX_BYTES + 32];    /* "client N: " + line + "\n" */
} message;

/* ---- clients and the registry ------------------------------------------------- */
typedef struct client {
    struct client *prev, *next;        /* g_lock, while registered */
    unsigned id;
    weft_socket *sock;                 /* read by the reader, written by the writer */
    weft_chan *out;                    /* messages for this client */
    atomic_uint refs;                  /* reader + writer */
    atomic_ulong dropped;              /* messages lost to a full queue */
} client;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static client *g_clients;              /* g_lock */
static atomic_uint g_next_id;

/* Hand msg to every registered client but `from`. Caller holds g_lock. */
static void broadcast_locked(const client *from, const message *msg)
{
    for (client *c = g_clients; c != NULL; c = c->next) {
        if (c == from)
            continue;
        /* relaxed: a statistic; the writer reads it with an exchange */
        if (weft_chan_try_send(c->out, msg) == -EAGAIN)
            atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    }
}

static void message_printf(message *m, const char *fmt, unsigned id)
{
    m->len = (uint32_t)snprintf(m->text, sizeof(m->text), fmt, id);
}

/* Link c, send the welcome to c itself and tell the others, all under
 * g_lock. Every other message reaches c through broadcast_locked(), under
 * the same lock, so the welcome comes first; and it is queued only once c
 * is linked, so a client that has read its welcome hears of every later
 * join (with the welcome queued before the link, a second client could
 * join in between, unheard by the first one, which had its welcome). */
static void client_join(client *c)
{
    message w, m;

    message_printf(&w, "welcome, you are client %u\n", c->id);
    message_printf(&m, "client %u joined\n", c->id);
    pthread_mutex_lock(&g_lock);
    c->prev = NULL;
    c->next = g_clients;
    if (g_clients)
        g_clients->prev = c;
    g_clients = c;
    weft_chan_try_send(c->out, &w);    /* empty queue: cannot be full */
    broadcast_locked(c, &m);
    pthread_mutex_unlock(&g_lock);
}

static void client_leave(client *c)
{
    message m;

    message_printf(&m, "client %u left\n", c->id);
    pthread_mutex_lock(&g_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g_clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    broadcast_locked(c, &m);
    pthread_mutex_unlock(&g_lock);
}

static void client_unref(client *c)
{
    /* acq_rel: the last one to leave sees everything the other task did
     * to the client before its own decrement */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    weft_socket_close(c->sock);
    weft_chan_drop(c->out);
    free(c);
}

/* ---- lines in, broadcasts out -------------------------------------------------------- */
typedef struct line_splitter {
    client *c;
    bool cut;                          /* discarding the rest of a long line */
    size_t line_len;
    char line[LINE_MAX_BYTES + 1];     /* + a CR that the LF may follow */
} line_splitter;

static void line_send(line_splitter *r)
{
    size_t n = r->line_len;
    message m;
    int head;

    r->line_len = 0;
    r->cut = false;
    if (n > 0 && r->line[n - 1] == '\r')
        n--;
    if (n > LINE_MAX_BYTES)
        n = LINE_MAX_BYTES;
    if (n == 0)
        return;                        /* empty lines are not worth a message */
    head = snprintf(m.text, sizeof(m.text), "client %u: ", r->c->id);
    memcpy(m.text + head, r->line, n);
    m.text[head + n] = '\n';
    m.len = (uint32_t)(head + n + 1);
    pthread_mutex_lock(&g_lock);
    broadcast_locked(r->c, &m);
    pthread_mutex_unlock(&g_lock);
}

static void line_feed(line_splitter *r, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;

        if (!r->cut) {
            size_t room = sizeof(r->line) - r->line_len;

            if (take > room) {
                r->cut = true;         /* keep the head, drop the tail */
                take = room;
            }
            memcpy(r->line + r->line_len, p, take);
            r->line_len += take;
        }
        if (nl == NULL)
            return;
        line_send(r);
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
}

/* A new client for `sock` (its queue made, two references: reader and
 * writer), or NULL (-ENOMEM; the socket is left to the caller). */
static client *client_new(weft_socket *sock)
{
    client *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    if (weft_chan_new(&c->out, sizeof(message), QUEUE_CAP) != 0) {
        free(c);
        return NULL;
    }
    c->sock = sock;
    c->id = atomic_fetch_add(&g_next_id, 1) + 1;
    atomic_init(&c->refs, 2);
    return c;
}

#endif /* WEFT_EXAMPLES_CHAT_ROOM_H */
