#!/usr/bin/python3
"""Tiering through the real server, with simulated time (`--test-clock`, POST /v1/debug/clock).

  - policy_over_simulated_days: 100 collections in six access patterns (busy: 11 accesses every
    step; once a day; once on day 8, after going cold; once then idle; never queried; pinned and
    idle; half of "once then idle" comes back busy on day 9). The clock advances in steps over ten days; after each step the test runs cycles until
    one moves nothing (each within max_migrations_per_cycle) and checks every collection's tier
    against a model of API.md's policy (hot_ttl 6h, warm_ttl 7d, 10 accesses in 1h promote),
    the distribution of GET /v1/tiering and GET /v1/collections?tier=.
  - memory_budget_demotes_lru: a small hot_memory_budget; collections loaded beyond it; a cycle
    demotes exactly the least recently used unpinned hot collections until the rest fit, pinned
    ones stay hot; creating more repeats it.
  - every_tier_answers_the_same: listing paged with the cursor (with vectors), filter-only,
    filtered vector and filtered text queries give identical answers hot, warm, cold (the first
    access promotes it: once a query, once a listing), warm again and hot again.
  - restart_keeps_tier_state: tiers, pins and access counts come back after SIGTERM and after
    SIGKILL, in the middle of a simulation that then goes on as the policy says.

Run: python3 tests/e2e/test_tiering.py --binary build/tierdb [--only NAME] [--keep]
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdbtest as T  # noqa: E402
from tdbtest import q  # noqa: E402

HOUR = 3600 * 1000
DAY = 24 * HOUR
HOT_TTL, WARM_TTL, WINDOW, THRESHOLD = 6 * HOUR, 7 * DAY, HOUR, 10
MAX_MIGRATIONS = 16  # the default of max_migrations_per_cycle
MOVES = ("hot_to_warm", "warm_to_cold", "warm_to_hot", "cold_to_warm")


# ---- helpers ---------------------------------------------------------------------------------

def ok(ctx, r, what, status=200):
    if not ctx.check(r.status == status, what, got=r, expected=status):
        raise AssertionError("%s -> %r" % (what, r))
    return r.json


def clock(c, advance_ms=None):
    """The server's clock in ms since the epoch (advancing it by advance_ms first)."""
    body = {} if advance_ms is None else {"advance": "%dms" % advance_ms}
    r = c.post("/v1/debug/clock", body)
    assert r.status == 200, r
    return rfc3339_ms(r.json["now"])


def rfc3339_ms(s):
    import datetime
    s = s.replace("Z", "+00:00")
    return int(round(datetime.datetime.fromisoformat(s).timestamp() * 1000))


def create(ctx, c, name, dim=4, docs=5, attrs=None, seed=0):
    body = {"name": name, "dimension": dim, "metric": "l2"}
    if attrs:
        body["attributes"] = attrs
    ok(ctx, c.post("/v1/collections", body), "create %s" % name, 201)
    if docs:
        rnd = random.Random(seed)
        d = [{"id": "d%04d" % i, "vector": [round(rnd.uniform(-1, 1), 3) for _ in range(dim)],
              "attributes": {"n": i}} for i in range(docs)]
        ok(ctx, c.post("/v1/collections/%s/documents" % q(name), {"documents": d}), "load %s" % name)


def touch(ctx, c, name, query=False):
    """One access: a get of one document, or a query."""
    if query:
        r = ok(ctx, c.post("/v1/collections/%s/query" % q(name), {"vector": [0, 0, 0, 0], "top_k": 3}),
               "query %s" % name)
        ctx.check(len(r["results"]) == 3, "query %s answers" % name, got=r)
    else:
        ok(ctx, c.get("/v1/collections/%s/documents/d0000" % q(name)), "get from %s" % name)


def tiers(ctx, c):
    cols = ok(ctx, c.get("/v1/collections"), "list collections")["collections"]
    return {x["name"]: x["tier"] for x in cols}


def settle(ctx, c, what, limit=MAX_MIGRATIONS):
    """Runs cycles until one moves nothing; returns the summed moves (and, under "max", the most
    one cycle made)."""
    total = dict.fromkeys(MOVES, 0)
    total["max"] = 0
    for _ in range(50):
        rep = ok(ctx, c.post("/v1/tiering/cycle"), "cycle (%s)" % what)
        ctx.check(rep.get("errors") == [], "%s: cycle without errors" % what, got=rep)
        moved = sum(rep.get(m, 0) for m in MOVES)
        ctx.check(moved <= limit, "%s: a cycle moves at most max_migrations_per_cycle" % what, got=rep,
                  expected=limit)
        for m in MOVES:
            total[m] += rep.get(m, 0)
        total["max"] = max(total["max"], moved)
        if moved == 0 and rep.get("deferred", 0) == 0:
            return total
    ctx.check(False, "%s: cycles never settled" % what)
    return total


# ---- the policy model (API.md "Tiering") ------------------------------------------------------

class Model:
    """One collection's tier state as API.md's policy has it."""

    def __init__(self, now, pinned=False):
        self.tier, self.pinned = "hot", pinned
        self.last = now
        self.wstart, self.wcount = 0, 0
        self.cold_since = 0

    def access(self, now):
        # A cold collection that is accessed comes back warm before the answer.
        if self.tier == "cold":
            self.tier, self.cold_since = "warm", 0
        if self.wstart == 0 or now - self.wstart >= WINDOW or now < self.wstart:
            self.wstart, self.wcount = now, 0
        self.wcount += 1
        self.last = max(self.last, now)

    def decide(self, now):
        idle = now - self.last
        busy = now - self.wstart < WINDOW and self.wcount >= THRESHOLD
        if self.tier == "hot" and not self.pinned and idle >= HOT_TTL:
            return "warm"
        if self.tier == "warm" and busy:
            return "hot"
        if self.tier == "warm" and not self.pinned and idle >= WARM_TTL:
            return "cold"
        return None

    def settle(self, now):
        for _ in range(4):
            t = self.decide(now)
            if t is None:
                return
            if t == "cold":
                self.cold_since = now
            self.tier = t


def check_tiers(ctx, c, models, what):
    got = tiers(ctx, c)
    bad = [(n, got.get(n), m.tier) for n, m in sorted(models.items()) if got.get(n) != m.tier]
    ctx.check(not bad, "%s: every tier as the policy says (name, got, expected)" % what, got=bad[:8])
    want = {"hot": 0, "warm": 0, "cold": 0}
    for m in models.values():
        want[m.tier] += 1
    dist = ok(ctx, c.get("/v1/tiering"), "GET /v1/tiering")["distribution"]
    ctx.check(dist == want, "%s: GET /v1/tiering distribution" % what, got=dist, expected=want)
    for t in ("hot", "warm", "cold"):
        names = sorted(x["name"] for x in ok(ctx, c.get("/v1/collections?tier=" + t), "list ?tier")["collections"])
        exp = sorted(n for n, m in models.items() if m.tier == t)
        ctx.check(names == exp, "%s: GET /v1/collections?tier=%s" % (what, t), got=names[:6], expected=exp[:6])
    return not bad


# ---- (a) 100 collections over simulated days -------------------------------------------------

def policy_over_simulated_days(ctx):
    s = ctx.server("policy", env={"TIERDB_FSYNC": "none", "TIERDB_WORKER_INTERVAL": "0"},
                   args=["--test-clock"])
    c = s.client()
    now = clock(c)
    groups = {"busy": 10, "daily": 20, "weekly": 10, "once": 20, "never": 20, "pinned": 20}
    models, group_of = {}, {}
    for g, n in groups.items():
        for i in range(n):
            name = "%s-%02d" % (g, i)
            create(ctx, c, name, seed=len(models))
            models[name] = Model(now, pinned=(g == "pinned"))
            models[name].access(now)  # the load is a write: an access
            group_of[name] = g
            if g == "pinned":
                ok(ctx, c.post("/v1/collections/%s/tier/pin" % q(name)), "pin")
    check_tiers(ctx, c, models, "t=0")
    start = now
    # Hourly steps through the first 8 hours, 4-hour steps to the end of day 1, then 6-hour steps
    # to day 10 (every boundary of the groups below falls on a step).
    steps = [HOUR] * 8 + [4 * HOUR] * 4 + [6 * HOUR] * 36
    totals = dict.fromkeys(MOVES, 0)
    most = 0
    for k, step in enumerate(steps):
        now = clock(c, step)
        t = now - start
        for name, g in group_of.items():
            m = models[name]
            if g == "busy":
                for i in range(THRESHOLD + 1):
                    touch(ctx, c, name, query=(i == 0))
                    m.access(now)
            elif g == "daily" and t % DAY == 0:
                touch(ctx, c, name, query=True)
                m.access(now)
            elif g == "weekly" and t == 8 * DAY:  # cold since day 7: the query brings it back
                touch(ctx, c, name, query=True)
                m.access(now)
            elif g == "once" and t == HOUR:
                touch(ctx, c, name, query=True)
                m.access(now)
            elif g == "once" and t == 9 * DAY and int(name[-2:]) % 2 == 0:
                # Back after it went cold: the first access (a query) brings it warm at once ...
                touch(ctx, c, name, query=True)
                m.access(now)
                ctx.check(tiers(ctx, c)[name] == "warm", "a cold collection is warm after an access",
                          got=tiers(ctx, c)[name])
                for _ in range(THRESHOLD):  # ... and enough accesses make it hot at the next cycle
                    touch(ctx, c, name)
                    m.access(now)
        got = settle(ctx, c, "step %d" % k)
        for mv in MOVES:
            totals[mv] += got[mv]
        most = max(most, got["max"])
        for m in models.values():
            m.settle(now)
        if not check_tiers(ctx, c, models, "after %.0fh" % (t / HOUR)):
            break
    # Every kind of move happened, and the distribution at the end is what the groups imply.
    # Cycles moved every way but cold -> warm (the accesses themselves did that); the server's
    # move counters saw all four kinds.
    for mv in ("hot_to_warm", "warm_to_cold", "warm_to_hot"):
        ctx.check(totals[mv] > 0, "cycles made some %s moves over ten days" % mv, got=totals)
    ctx.check(most == MAX_MIGRATIONS, "50 collections went warm at once: cycles stopped at the limit",
              got=most, expected=MAX_MIGRATIONS)
    counted = ok(ctx, c.get("/v1/tiering"), "GET /v1/tiering")["moves"]
    for mv in MOVES:
        ctx.check(counted.get(mv, 0) >= totals[mv] and counted.get(mv, 0) > 0,
                  "GET /v1/tiering counts %s moves" % mv, got=counted, expected=totals)
    final = {g: sorted({models[n].tier for n in models if group_of[n] == g}) for g in groups}
    ctx.check(final["busy"] == ["hot"] and final["pinned"] == ["hot"] and final["daily"] == ["warm"]
              and final["weekly"] == ["warm"]
              and final["never"] == ["cold"] and final["once"] == ["cold", "warm"],
              "the groups end where the policy puts them", got=final)
    c.close()
    s.stop()


# ---- (b) memory budget -----------------------------------------------------------------------

def hot_bytes(ctx, c):
    """memory_bytes + disk_bytes of each hot collection: what the budget counts."""
    cols = ok(ctx, c.get("/v1/collections?tier=hot"), "list hot")["collections"]
    return {x["name"]: x["memory_bytes"] + x["disk_bytes"] for x in cols}


def memory_budget_demotes_lru(ctx):
    # One probe server tells the size of one loaded collection; the budget is set from it.
    probe = ctx.server("budget-probe", env={"TIERDB_FSYNC": "none", "TIERDB_WORKER_INTERVAL": "0"},
                       args=["--test-clock"])
    pc = probe.client()
    create(ctx, pc, "probe", dim=32, docs=200)
    size = hot_bytes(ctx, pc)["probe"]
    pc.close()
    probe.stop()
    ctx.check(size > 0, "a loaded hot collection holds memory", got=size)
    budget = int(size * 3.5)
    s = ctx.server("budget", env={"TIERDB_FSYNC": "none", "TIERDB_WORKER_INTERVAL": "0",
                                  "TIERDB_HOT_MEMORY_BUDGET": str(budget)}, args=["--test-clock"])
    c = s.client()
    info = ok(ctx, c.get("/v1/tiering"), "GET /v1/tiering")
    ctx.check(info["memory_budget_bytes"] == budget, "the configured budget is reported",
              got=info["memory_budget_bytes"], expected=budget)
    clock(c)
    names = ["b%d" % i for i in range(7)]
    for i, n in enumerate(names):
        create(ctx, c, n, dim=32, docs=200, seed=i)
        clock(c, 60 * 1000)  # one simulated minute apart: a strict LRU order
    ok(ctx, c.post("/v1/collections/b0/tier/pin"), "pin b0")  # the least recently used one
    # Access order now: b2 is touched last, so b1 and b3 are the oldest unpinned ones.
    touch(ctx, c, "b2")
    clock(c, 60 * 1000)
    order = ["b0", "b1", "b3", "b4", "b5", "b6", "b2"]  # least recently used first

    def expect(order, pinned):
        sizes = hot_bytes(ctx, c)
        total = sum(sizes.values())
        demoted = []
        for n in order:
            if total <= budget:
                break
            if n in pinned or n not in sizes:
                continue
            demoted.append(n)
            total -= sizes[n]
        return demoted, total

    want_demoted, _ = expect(order, {"b0"})
    ctx.check(len(want_demoted) >= 2, "the set-up is over budget by more than one collection",
              got=want_demoted)
    rep = ok(ctx, c.post("/v1/tiering/cycle"), "cycle")
    ctx.check(rep["hot_to_warm"] == len(want_demoted), "the cycle demotes exactly the LRU ones",
              got=rep, expected=len(want_demoted))
    t = tiers(ctx, c)
    got_warm = sorted(n for n in names if t[n] == "warm")
    ctx.check(got_warm == sorted(want_demoted), "least recently used unpinned collections went warm",
              got=got_warm, expected=sorted(want_demoted))
    ctx.check(t["b0"] == "hot", "the pinned collection stays hot", got=t["b0"])
    info = ok(ctx, c.get("/v1/tiering"), "GET /v1/tiering")
    ctx.check(info["hot_memory_bytes"] <= budget, "hot collections fit the budget after the cycle",
              got=info["hot_memory_bytes"], expected=budget)
    again = ok(ctx, c.post("/v1/tiering/cycle"), "second cycle")
    ctx.check(sum(again[m] for m in MOVES) == 0, "under budget: the next cycle moves nothing", got=again)
    # More collections beyond the budget: the next cycle demotes the now least recently used.
    hot_now = [n for n in order if t[n] == "hot"]
    for i in range(2):
        n = "c%d" % i
        create(ctx, c, n, dim=32, docs=200, seed=100 + i)
        clock(c, 60 * 1000)
        hot_now.append(n)
    want_demoted, _ = expect(hot_now, {"b0"})
    rep = ok(ctx, c.post("/v1/tiering/cycle"), "cycle after more creates")
    t = tiers(ctx, c)
    got_warm = sorted(n for n in hot_now if t[n] == "warm")
    ctx.check(got_warm == sorted(want_demoted) and len(want_demoted) > 0,
              "the new least recently used went warm", got=got_warm, expected=sorted(want_demoted))
    ctx.check(t["b0"] == "hot", "the pinned collection is still hot", got=t["b0"])
    info = ok(ctx, c.get("/v1/tiering"), "GET /v1/tiering")
    ctx.check(info["hot_memory_bytes"] <= budget, "hot collections fit the budget again",
              got=info["hot_memory_bytes"], expected=budget)
    c.close()
    s.stop()


# ---- (c) identical answers in every tier -----------------------------------------------------

ATTRS = {"title": {"type": "string", "full_text": True}, "n": {"type": "int"}, "tags": {"type": "string[]"}}
WORDS = ["red", "green", "blue", "shoe", "hat", "coat", "sale", "new"]
QUERIES = [
    {"filter": {"n": {"$gte": 120}}, "top_k": 1000},
    {"filter": {"$or": [{"tags": {"$contains": "sale"}}, {"n": {"$lt": 10}}]}, "top_k": 1000,
     "include": {"attributes": True}},
    {"vector": [0.5, -0.2, 0.1, 0.9, -0.7, 0.3, 0.0, 0.4], "top_k": 15, "exact": True,
     "filter": {"tags": {"$in": ["new", "hat"]}}, "include": {"attributes": True, "vector": True}},
    {"vector": [-0.5, 0.2, 0.8, 0.1, 0.7, -0.3, 0.6, -0.4], "top_k": 20, "exact": True},
    {"text": {"query": "red shoe", "fields": ["title"]}, "filter": {"n": {"$lt": 200}}, "top_k": 25},
    {"text": "blue coat sale", "top_k": 30, "include": {"attributes": ["n"]}},
]


def answers(ctx, c, name, query_first):
    """Every document (paged with the cursor, with vectors) and every query's results."""
    out = {}

    def listing():
        docs, probs = T.list_all(c, name, limit=37, include_vectors=True)
        ctx.check(not probs, "listing %s pages cleanly" % name, got=probs)
        out["docs"] = docs

    def queries():
        out["tiers"] = []
        for i, qb in enumerate(QUERIES):
            r = ok(ctx, c.post("/v1/collections/%s/query" % q(name), qb), "query %d" % i)
            out["q%d" % i] = r["results"]
            out["tiers"].append(r.get("tier"))

    if query_first:
        queries()
        listing()
    else:
        listing()
        queries()
    return out


def tier_of(ctx, c, name):
    return ok(ctx, c.get("/v1/collections/%s/tier" % q(name)), "tier of %s" % name)["tier"]


def every_tier_answers_the_same(ctx):
    s = ctx.server("answers", env={"TIERDB_WORKER_INTERVAL": "0", "TIERDB_MEMTABLE_MAX_DOCS": "100"},
                   args=["--test-clock"])
    c = s.client()
    name = "shop"
    ok(ctx, c.post("/v1/collections", {"name": name, "dimension": 8, "metric": "l2", "attributes": ATTRS}),
       "create", 201)
    rnd = random.Random(7)
    for b in range(3):  # 300 documents, flushed in segments of 100 (and some memtable rows)
        docs = []
        for i in range(b * 100, b * 100 + 100):
            doc = {"id": "p%04d" % i, "vector": [round(rnd.uniform(-1, 1), 4) for _ in range(8)],
                   "attributes": {"title": " ".join(rnd.choice(WORDS) for _ in range(3)), "n": i,
                                  "tags": sorted({rnd.choice(WORDS) for _ in range(2)}),
                                  "extra": {"k": [i, None, "x\u00e9"]}}}
            if i % 17 == 0:
                del doc["attributes"]["tags"]
            docs.append(doc)
        ok(ctx, c.post("/v1/collections/%s/documents" % name, {"documents": docs}), "load")
    ok(ctx, c.post("/v1/collections/%s/documents/delete" % name, {"ids": ["p0005", "p0150"]}), "delete")
    ok(ctx, c.post("/v1/collections/%s/documents" % name,
                   {"documents": [{"id": "p0007", "vector": [0.1] * 8, "attributes": {"n": 7, "title": "red"}}]}),
       "overwrite")
    base = answers(ctx, c, name, False)
    ctx.check(len(base["docs"]) == 298, "298 documents listed", got=len(base["docs"]))
    for k in ("q0", "q1", "q2", "q4", "q5"):
        ctx.check(len(base[k]) > 0, "query %s matches something" % k, got=base[k])

    def same(what, want_tier_before, query_first=False, want_tier_after=None):
        t = tier_of(ctx, c, name)
        ctx.check(t == want_tier_before, "%s: tier before the reads" % what, got=t, expected=want_tier_before)
        got = answers(ctx, c, name, query_first)
        for k in base:
            if k == "tiers":
                continue
            ctx.check(T.json_same(got[k], base[k]), "%s: %s identical" % (what, k),
                      got=got[k][:3], expected=base[k][:3])
        after = want_tier_after or want_tier_before
        ctx.check(all(x == after for x in got["tiers"]), "%s: queries report tier %s" % (what, after),
                  got=got["tiers"])
        t = tier_of(ctx, c, name)
        ctx.check(t == after, "%s: tier after the reads" % what, got=t, expected=after)

    def move(direction, to):
        r = ok(ctx, c.post("/v1/collections/%s/tier/%s" % (name, direction), {"to": to}), "%s to %s" % (direction, to))
        ctx.check(r["tier"] == to, "%s to %s: the tier object says so" % (direction, to), got=r)

    same("hot", "hot")
    move("demote", "warm")
    same("warm", "warm")
    move("demote", "cold")
    same("cold, a query first", "cold", query_first=True, want_tier_after="warm")
    move("demote", "cold")
    same("cold, a listing first", "cold", query_first=False, want_tier_after="warm")
    same("warm again", "warm")
    move("promote", "hot")
    same("hot again", "hot")
    # After a restart, in each tier once more.
    move("demote", "cold")
    c.close()
    s.stop()
    s.start()
    c = s.client()
    same("cold after a restart", "cold", query_first=True, want_tier_after="warm")
    move("promote", "hot")
    same("hot after a restart", "hot")
    c.close()
    s.stop()


# ---- (d) restart in the middle ----------------------------------------------------------------

def restart_keeps_tier_state(ctx):
    env = {"TIERDB_FSYNC": "always", "TIERDB_WORKER_INTERVAL": "0"}
    s = ctx.server("restart", env=env, args=["--test-clock"])
    c = s.client()
    start = clock(c)
    names = ["r-hot", "r-warm", "r-cold", "r-pin-hot", "r-pin-warm", "r-idle"]
    models = {}
    for i, n in enumerate(names):
        create(ctx, c, n, seed=i, docs=20)
        models[n] = Model(start)
        models[n].access(start)
    ok(ctx, c.post("/v1/collections/r-warm/tier/demote", {"to": "warm"}), "demote r-warm")
    models["r-warm"].tier = "warm"
    ok(ctx, c.post("/v1/collections/r-cold/tier/demote", {"to": "cold"}), "demote r-cold")
    models["r-cold"].tier = "cold"
    ok(ctx, c.post("/v1/collections/r-pin-warm/tier/demote", {"to": "warm"}), "demote r-pin-warm")
    models["r-pin-warm"].tier = "warm"
    for n in ("r-pin-hot", "r-pin-warm"):
        ok(ctx, c.post("/v1/collections/%s/tier/pin" % n), "pin %s" % n)
        models[n].pinned = True
    # Halfway through the simulation: 5 hours in, r-hot is accessed a few times.
    now = clock(c, 5 * HOUR)
    for _ in range(3):
        touch(ctx, c, "r-hot")
        models["r-hot"].access(now)
    settle(ctx, c, "before restarts")  # also writes the access state to the catalog
    check_tiers(ctx, c, models, "before restarts")

    def snapshot():
        out = {}
        for n in names:
            r = ok(ctx, c.get("/v1/collections/%s/tier" % n), "tier of %s" % n)
            out[n] = (r["tier"], r["pinned"], r["access_count"], r["last_accessed_at"], r["snapshot_id"] is not None)
        return out

    before = snapshot()
    ctx.check(before["r-hot"][2] == 4, "r-hot counted its accesses (the load and three gets)", got=before["r-hot"])
    for how in ("SIGTERM", "SIGKILL"):
        c.close()
        if how == "SIGTERM":
            s.stop()
        else:
            s.kill()
        s.start()
        c = s.client()
        after = snapshot()
        ctx.check(after == before, "tier state after a restart by %s" % how, got=after, expected=before)
        # The test clock starts again at the wall clock: move it back to the simulated now.
        cur = clock(c)
        if now > cur:
            clock(c, now - cur)
        for n in names:
            # One page: one access, as the model counts it.
            docs, probs = T.list_all(c, n, limit=100, include_vectors=True) if n != "r-cold" else ([None] * 20, [])
            ctx.check(len(docs) == 20 and not probs, "%s: every document after %s" % (n, how), got=len(docs))
            if n != "r-cold":
                models[n].access(now)
        settle(ctx, c, "after %s" % how)
        check_tiers(ctx, c, models, "after %s" % how)
        before = snapshot()
    # The simulation goes on: two hours later nothing was accessed since the reads above; at 6h
    # idle the unpinned hot ones go warm, pinned ones stay; after 7 days the unpinned warm go cold.
    for step in (2 * HOUR, 5 * HOUR, 7 * DAY):
        now = clock(c, step)
        settle(ctx, c, "+%dh" % (step // HOUR))
        for m in models.values():
            m.settle(now)
        check_tiers(ctx, c, models, "+%dh after the restarts" % (step // HOUR))
    c.close()
    s.kill()
    s.start()
    c = s.client()
    check_tiers(ctx, c, models, "after a final SIGKILL")
    c.close()
    s.stop()


if __name__ == "__main__":
    T.main([policy_over_simulated_days, memory_budget_demotes_lru, every_tier_answers_the_same,
            restart_keeps_tier_state])
