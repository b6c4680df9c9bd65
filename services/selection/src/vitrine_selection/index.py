"""The in-process offer index ``GET /offers`` and ``GET /suppliers`` answer from. Pure: no I/O.

MongoDB stays the system of record (the ``offers`` collection); this index holds, per offer,
only what a query filters, sorts and shows, in columns (numpy arrays indexed by a *slot*, one
per offer, never reused):

- filter columns: ``visible``, ``sold_out``, plan ``general``, ``open_on`` per surface, and
  category / source kind / platform / supplier as small integer codes;
- sort columns: the five sort fields, plus ``rank``: the offer id's position in string order
  (the tie-breaker every sort ends with, as in MongoDB, so a cursor means the same thing on
  every replica and after a restart);
- postings: title token → slots (``array('i')``), creator → slots of targeted plans naming
  them, policy → slots whose merchant it exempts;
- per slot, the few strings a result row shows (ids, title, images, plan).

A query is a handful of vectorised masks over all slots, then a partial sort of the matches
by (sort value, rank) — O(offers) in C, not in Python — and the keyset cursor is one more mask.
Documents reach the index only after their transaction committed (``feed.py``), each with the
projection revision it was written at: an older revision of an offer never replaces a newer.
"""

from __future__ import annotations

import bisect
import sys
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from vitrine.contract import policy_kernel as kernel
from vitrine_selection.domain import Eligibility, Policy
from vitrine_selection.search import SORT_FIELDS, OfferQuery, decode_cursor, query_tokens

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: ``next_rate_bps`` / ``next_rate_at`` absent.
NONE = np.iinfo(np.int64).min
#: Coded columns (code 0 = no value).
CODED = ("category", "source_kind", "source_platform", "supplier")
#: Integer columns; the sort fields among them.
INTEGERS = (
    "rate_bps",
    "commission_fen",
    "price_fen",
    "sales_orders_30d",
    "sales_gmv_30d_fen",
    "published_ms",
    "next_rate_bps",
    "next_rate_at_ms",
    "due_at_ms",
)
FLAGS = ("visible", "sold_out", "general", "open_showcase", "open_live")


@dataclass(frozen=True, slots=True)
class Row:
    """What a result row shows besides the columns."""

    offer_id: str
    product_id: str | None
    merchant_id: str | None
    title: str
    images: tuple[str, ...]
    plan: str
    audience: tuple[str, ...]  # creators of a targeted plan; () for a general one
    shop_exempt: tuple[str, ...]


@dataclass(frozen=True)
class Page:
    """One page of ``GET /offers``: its rows and the (sort value, offer id) of the next
    page's start, if there is one."""

    rows: list[dict[str, Any]]
    after: tuple[int, str] | None


def _ms(value: Any) -> int:
    if value is None:
        return int(NONE)
    assert isinstance(value, datetime)
    return int(value.timestamp() * 1000)


def _interned(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def _datetime(ms: int) -> datetime | None:
    # What the document read back from MongoDB holds: a UTC datetime to the millisecond.
    return None if ms == NONE else EPOCH + timedelta(milliseconds=ms)


class OfferIndex:
    """Every offer of the projection, query-shaped, in memory (see the module docstring).

    Also holds the accounts and policies a creator's eligibility is judged from, so a query
    never waits on the database.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        self.slots: dict[str, int] = {}
        self.rows: list[Row] = []
        self.revs: Ints = np.zeros(capacity, np.int64)
        self.flags: dict[str, Mask] = {f: np.zeros(capacity, np.bool_) for f in FLAGS}
        self.ints: dict[str, Ints] = {f: np.zeros(capacity, np.int64) for f in INTEGERS}
        self.codes: dict[str, Ints] = {f: np.zeros(capacity, np.int64) for f in CODED}
        self.rank: Ints = np.zeros(capacity, np.int64)
        #: Offer ids in string order (``rank`` = position here).
        self.ordered: list[str] = []
        self._ranks_stale = False
        #: Per coded column, value → code (1-based) and code → value.
        self.code_of: dict[str, dict[str, int]] = {f: {} for f in CODED}
        self.value_of: dict[str, list[str | None]] = {f: [None] for f in CODED}
        self.tokens: dict[str, array[int]] = {}
        self.targeted: dict[str, set[int]] = {}
        self.exempt: dict[str, set[int]] = {}
        self.accounts: dict[str, tuple[int, kernel.Account]] = {}
        self.policies: dict[str, tuple[int, Policy]] = {}
        self.ready = False

    # --- writing ---------------------------------------------------------------------------

    def _grow(self) -> None:
        capacity = len(self.rank) * 2
        for group in (self.flags, self.ints, self.codes):
            for name, column in group.items():
                grown = np.zeros(capacity, column.dtype)
                grown[: len(column)] = column
                group[name] = grown  # type: ignore[assignment]
        rank, revs = np.zeros(capacity, np.int64), np.zeros(capacity, np.int64)
        rank[: len(self.rank)] = self.rank
        revs[: len(self.revs)] = self.revs
        self.rank, self.revs = rank, revs

    def _code(self, column: str, value: str | None) -> int:
        if value is None:
            return 0
        codes = self.code_of[column]
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(self.value_of[column])
            self.value_of[column].append(value)
        return code

    def apply(
        self,
        docs: Iterable[Mapping[str, Any]],
        rev: int | None = None,
        *,
        defer_ranks: bool = False,
    ) -> int:
        """Put offer documents (as stored in ``offers``) into the index; each carries its
        revision in ``rev`` unless ``rev`` is given. A document older than the one held is
        skipped. Returns how many were applied. ``defer_ranks``: many more will follow (a
        load): leave the id order to :meth:`refresh_ranks`."""
        fresh: list[int] = []
        applied = 0
        for doc in docs:
            doc_rev = rev if rev is not None else int(doc.get("rev") or 0)
            oid = str(doc["_id"])
            slot = self.slots.get(oid)
            if slot is None:
                slot = self._new_slot(oid)
                fresh.append(slot)
            elif doc_rev < self.revs[slot]:
                continue
            self._put(slot, doc, doc_rev)
            applied += 1
        if defer_ranks:
            self._ranks_stale = True
        elif self._ranks_stale:
            self.refresh_ranks()
        elif fresh:
            self._rank_new(fresh)
        return applied

    def _new_slot(self, oid: str) -> int:
        slot = self.size
        if slot == len(self.rank):
            self._grow()
        self.size += 1
        self.slots[oid] = slot
        self.rows.append(Row(oid, None, None, "", (), "general", (), ()))
        self.revs[slot] = -1
        return slot

    def _rank_new(self, fresh: list[int]) -> None:
        """Merge new offers (the last slots) into the id order: O(offers), no full sort."""
        ids = sorted((self.rows[s].offer_id, s) for s in fresh)
        at = np.array([bisect.bisect_left(self.ordered, oid) for oid, _ in ids], np.int64)
        held = self.rank[: self.size - len(fresh)]
        held += np.searchsorted(at, held, side="right")  # shifted by the new ones before
        merged: list[str] = []
        start = 0
        for j, (oid, slot) in enumerate(ids):
            cut = int(at[j])
            merged += self.ordered[start:cut]
            merged.append(oid)
            start = cut
            self.rank[slot] = cut + j
        merged += self.ordered[start:]
        self.ordered = merged

    def _put(self, slot: int, doc: Mapping[str, Any], rev: int) -> None:
        old = self.rows[slot]
        title = doc.get("title") or ""
        if title != old.title or self.revs[slot] < 0:
            if self.revs[slot] >= 0:
                self._unpost(slot, old.title)
            for token in doc.get("tokens") or ():
                self.tokens.setdefault(token, array("i")).append(slot)
        # Interned: the same few merchants, plans, creators and policies recur in many rows.
        audience = tuple(sys.intern(a) for a in doc.get("audience") or () if a != "*")
        general = "*" in (doc.get("audience") or ())
        self._move(self.targeted, slot, old.audience, audience)
        exempt = tuple(sys.intern(p) for p in doc.get("shop_exempt") or ())
        self._move(self.exempt, slot, old.shop_exempt, exempt)
        self.rows[slot] = Row(
            offer_id=old.offer_id,
            product_id=doc.get("product_id"),
            merchant_id=_interned(doc.get("merchant_id")),
            title=title,
            images=tuple(doc.get("images") or ()),
            plan=sys.intern(doc.get("plan") or "general"),
            audience=audience,
            shop_exempt=exempt,
        )
        self.revs[slot] = rev
        open_on = doc.get("open_on") or ()
        flags = self.flags
        flags["visible"][slot] = bool(doc.get("visible"))
        flags["sold_out"][slot] = bool(doc.get("sold_out"))
        flags["general"][slot] = general
        flags["open_showcase"][slot] = "showcase" in open_on
        flags["open_live"][slot] = "live" in open_on
        for name in CODED:
            self.codes[name][slot] = self._code(name, doc.get(name))
        ints = self.ints
        for name in ("rate_bps", "commission_fen", "price_fen", "sales_orders_30d"):
            ints[name][slot] = int(doc.get(name) or 0)
        ints["sales_gmv_30d_fen"][slot] = int(doc.get("sales_gmv_30d_fen") or 0)
        ints["published_ms"][slot] = int(doc.get("published_ms") or 0)
        nxt = doc.get("next_rate_bps")
        ints["next_rate_bps"][slot] = NONE if nxt is None else int(nxt)
        ints["next_rate_at_ms"][slot] = _ms(doc.get("next_rate_at"))
        ints["due_at_ms"][slot] = _ms(doc.get("due_at"))

    def _unpost(self, slot: int, title: str) -> None:
        from vitrine_selection.search import title_tokens

        for token in title_tokens(title):
            posting = self.tokens.get(token)
            if posting is not None and slot in posting:
                posting.remove(slot)
                if not posting:
                    del self.tokens[token]

    @staticmethod
    def _move(
        postings: dict[str, set[int]], slot: int, old: tuple[str, ...], new: tuple[str, ...]
    ) -> None:
        if old == new:
            return
        for key in set(old) - set(new):
            postings[key].discard(slot)
            if not postings[key]:
                del postings[key]
        for key in set(new) - set(old):
            postings.setdefault(key, set()).add(slot)

    def apply_accounts(self, accounts: Iterable[tuple[int, kernel.Account]]) -> None:
        """Accounts (a creator's shops), each with its revision; older ones are skipped."""
        for rev, account in accounts:
            held = self.accounts.get(account.account_id)
            if held is None or held[0] <= rev:
                self.accounts[account.account_id] = (rev, account)

    def apply_policies(self, policies: Iterable[tuple[int, Policy]]) -> None:
        """Policies, each with its revision; older ones are skipped."""
        for rev, policy in policies:
            held = self.policies.get(policy.policy_id)
            if held is None or held[0] <= rev:
                self.policies[policy.policy_id] = (rev, policy)

    def refresh_ranks(self) -> None:
        """Recompute the id order after bulk insertions (one sort)."""
        if not self._ranks_stale:
            return
        ids = [row.offer_id for row in self.rows]
        order = sorted(range(self.size), key=ids.__getitem__)
        self.ordered = [ids[i] for i in order]
        self.rank[np.asarray(order, dtype=np.int64)] = np.arange(self.size, dtype=np.int64)
        self._ranks_stale = False

    # --- reading ---------------------------------------------------------------------------

    def _posting_mask(self, slots: Iterable[int] | array[int], n: int) -> Mask:
        mask = np.zeros(n, np.bool_)
        if isinstance(slots, array):
            found = np.frombuffer(slots, dtype=np.int32) if len(slots) else np.zeros(0, np.int32)
        else:
            found = np.fromiter(slots, dtype=np.int64)
        mask[found] = True
        return mask

    def _equal(self, column: str, value: str, n: int) -> Mask | None:
        code = self.code_of[column].get(value)
        return None if code is None else self.codes[column][:n] == code

    def matching(self, query: OfferQuery, eligibility: Eligibility | None) -> Mask:
        """The slots of visible offers the query's filters (not its cursor) select."""
        n = self.size
        mask = self.flags["visible"][:n].copy()
        if query.q is not None:
            postings = [self.tokens.get(t) for t in query_tokens(query.q)]
            for posting in sorted(postings, key=lambda p: len(p) if p is not None else -1):
                if posting is None or not posting:
                    return np.zeros(n, np.bool_)
                mask &= self._posting_mask(posting, n)
        for column, value in (
            ("category", query.category),
            ("source_kind", query.source_kind),
            ("source_platform", query.platform),
        ):
            if value is not None:
                equal = self._equal(column, value, n)
                if equal is None:
                    return np.zeros(n, np.bool_)
                mask &= equal
        ints = self.ints
        if query.min_rate_bps is not None:
            mask &= ints["rate_bps"][:n] >= query.min_rate_bps
        if query.min_price_fen is not None:
            mask &= ints["price_fen"][:n] >= query.min_price_fen
        if query.max_price_fen is not None:
            mask &= ints["price_fen"][:n] <= query.max_price_fen
        if eligibility is not None:
            audience = self.flags["general"][:n].copy()
            if named := self.targeted.get(eligibility.creator_id):
                audience |= self._posting_mask(named, n)
            mask &= audience
            mask &= ~self.flags["sold_out"][:n]
            mask &= self.flags[f"open_{eligibility.surface}"][:n]
            for policy_id in eligibility.exempt_by:
                mask &= self._posting_mask(self.exempt.get(policy_id, ()), n)
        return mask

    def page(self, query: OfferQuery, eligibility: Eligibility | None = None) -> Page:
        """One page of the query, in (sort value, offer id) order in the query's direction,
        starting after its cursor."""
        self.refresh_ranks()
        n = self.size
        mask = self.matching(query, eligibility)
        field = SORT_FIELDS[query.sort]
        key = self.ints[field][:n]
        rank = self.rank[:n]
        desc = query.direction == "desc"
        if query.cursor is not None:
            at = decode_cursor(query.cursor, query)
            if desc:
                # Before (value, id): a smaller value, or the same value and a smaller id.
                cut = bisect.bisect_left(self.ordered, at.offer_id)
                mask &= (key < at.value) | ((key == at.value) & (rank < cut))
            else:
                cut = bisect.bisect_right(self.ordered, at.offer_id)
                mask &= (key > at.value) | ((key == at.value) & (rank >= cut))
        found = np.flatnonzero(mask)
        want = query.limit + 1
        primary = -key[found] if desc else key[found]
        secondary = -rank[found] if desc else rank[found]
        if len(found) > want:
            # The `want` first by (primary, secondary) without sorting every match: all with
            # a primary below the want-th smallest, then the ties at it with the lowest ids.
            kth = np.partition(primary, want - 1)[want - 1]
            before = np.flatnonzero(primary < kth)
            tied = np.flatnonzero(primary == kth)
            need = want - len(before)
            if len(tied) > need:
                tied = tied[np.argpartition(secondary[tied], need - 1)[:need]]
            chosen = np.concatenate([before, tied])
            found, primary, secondary = found[chosen], primary[chosen], secondary[chosen]
        found = found[np.lexsort((secondary, primary))][:want]
        slots = [int(s) for s in found]
        more = len(slots) > query.limit
        slots = slots[: query.limit]
        rows = [self.row(s) for s in slots]
        after = (int(key[slots[-1]]), rows[-1]["offer_id"]) if more and slots else None
        return Page(rows, after)

    def row(self, slot: int) -> dict[str, Any]:
        """A result row, as ``GET /offers`` shows it (the fields of ``http.SUMMARY``)."""
        r, ints, codes = self.rows[slot], self.ints, self.codes
        nxt, nxt_at = int(ints["next_rate_bps"][slot]), int(ints["next_rate_at_ms"][slot])
        published = int(ints["published_ms"][slot])
        return {
            "offer_id": r.offer_id,
            "product_id": r.product_id,
            "merchant_id": r.merchant_id,
            "title": r.title,
            "category": self.value_of["category"][codes["category"][slot]],
            "images": list(r.images),
            "price_fen": int(ints["price_fen"][slot]),
            "source_kind": self.value_of["source_kind"][codes["source_kind"][slot]],
            "source_platform": self.value_of["source_platform"][codes["source_platform"][slot]],
            "plan": r.plan,
            "rate_bps": int(ints["rate_bps"][slot]),
            "next_rate_bps": None if nxt == NONE else nxt,
            "next_rate_at": _datetime(nxt_at),
            "commission_fen": int(ints["commission_fen"][slot]),
            "sales_orders_30d": int(ints["sales_orders_30d"][slot]),
            "sales_gmv_30d_fen": int(ints["sales_gmv_30d_fen"][slot]),
            "sold_out": bool(self.flags["sold_out"][slot]),
            "published_at": _datetime(published) if published else None,
        }

    def suppliers(self) -> list[dict[str, Any]]:
        """Visible offers per supplier (``kind`` or ``kind:platform``): count, rate range."""
        n = self.size
        visible = self.flags["visible"][:n]
        codes = self.codes["supplier"][:n][visible]
        rates = self.ints["rate_bps"][:n][visible]
        groups: list[dict[str, Any]] = []
        for code in np.unique(codes):
            if code == 0:
                continue
            in_group = rates[codes == code]
            groups.append(
                {
                    "supplier": self.value_of["supplier"][int(code)],
                    "offers": len(in_group),
                    "min_rate_bps": int(in_group.min()),
                    "max_rate_bps": int(in_group.max()),
                }
            )
        return groups

    def due(self, now: datetime, limit: int) -> list[str]:
        """Offers whose listing changes by the passage of time at or before ``now`` (earliest
        first): the refresher's work, found without scanning the database."""
        due = self.ints["due_at_ms"][: self.size]
        found = np.flatnonzero((due != NONE) & (due <= _ms(now)))
        found = found[np.argsort(due[found], kind="stable")][:limit]
        return [self.rows[int(s)].offer_id for s in found]

    def account(self, account_id: str) -> kernel.Account | None:
        held = self.accounts.get(account_id)
        return held[1] if held else None

    def policies_now(self) -> list[Policy]:
        return [p for _, p in self.policies.values()]
