/* SPDX-License-Identifier: MIT */
/* Intrusive circular doubly-linked list (a node embedded in its owner). Not
 * thread-safe: every list names the lock that guards it. */
#ifndef WEFT_UTIL_LIST_H
#define WEFT_UTIL_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct weft__list {
    struct weft__list *prev, *next;
};

#define weft__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void weft__list_init(struct weft__list *head)
{
    head->prev = head->next = head;
}

static inline bool weft__list_empty(const struct weft__list *head)
{
    return head->next == head;
}

static inline void weft__list_push_back(struct weft__list *head, struct weft__list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void weft__list_remove(struct weft__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
