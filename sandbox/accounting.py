"""Binance's position accounting for one exchange position key (SPEC §4.1).

An increasing fill moves the average entry price: ``avg = (qty·avg + q·p) / (qty + q)``;
a reducing fill leaves it and books ``(p − avg)·q·dir`` as realized PnL. On a one-way
(BOTH) key a fill that crosses zero is split into a closing leg and an opening leg.

Precision conventions, shared by the ground truth and documented in the README:
the average is kept to 18 decimal places (rounded half away from zero) and each
fill's ``realizedPnl`` is rounded to 8 decimal places, as Binance reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from sandbox.jsonl import EXACT, q8, q18

ZERO = Decimal(0)


@dataclass(frozen=True)
class Leg:
    """The part of a fill that falls into one episode."""

    qty: Decimal  # unsigned
    increasing: bool  # moves the key away from zero
    episode_no: int
    episode_dir: int  # +1 LONG episode, -1 SHORT episode
    realized_pnl: Decimal  # unrounded (p − avg)·q·dir for reducing legs, 0 otherwise
    closes_episode: bool  # this leg brought the key back to exactly zero


@dataclass
class KeyPosition:
    """State of one key ``{symbol}_{positionSide}``: signed quantity, average, episode counter."""

    position_side: str  # LONG | SHORT | BOTH
    qty: Decimal = ZERO  # signed: + long, − short
    avg: Decimal = ZERO
    episode_no: int = 0
    last_fill_time: int = 0

    @property
    def episode_dir(self) -> int:
        return 1 if self.qty > 0 else -1 if self.qty < 0 else 0

    def apply(self, side: str, qty: Decimal, price: Decimal, time: int = 0) -> tuple[list[Leg], Decimal]:
        """Book one fill; returns its legs and Binance's rounded per-fill ``realizedPnl``."""
        if qty <= 0:
            raise ValueError(f"fill quantity must be positive, got {qty}")
        signed = qty if side == "BUY" else -qty
        if self.position_side == "LONG" and self.qty + signed < 0:
            raise ValueError(f"SELL of {qty} would take the LONG key below zero (holds {self.qty})")
        if self.position_side == "SHORT" and self.qty + signed > 0:
            raise ValueError(f"BUY of {qty} would take the SHORT key above zero (holds {self.qty})")
        with localcontext(EXACT):
            legs = self._book(signed, price)
        self.last_fill_time = time
        return legs, q8(sum((leg.realized_pnl for leg in legs), ZERO))

    def _book(self, signed: Decimal, price: Decimal) -> list[Leg]:
        legs: list[Leg] = []
        remaining = signed
        while remaining != 0:
            if self.qty == 0:
                # a fill from flat opens a new episode
                self.episode_no += 1
                direction = 1 if remaining > 0 else -1
                q = abs(remaining)
                self.avg = price
                self.qty = remaining
                legs.append(Leg(q, True, self.episode_no, direction, ZERO, False))
                remaining = ZERO
            elif (self.qty > 0) == (remaining > 0):
                q = abs(remaining)
                self.avg = q18((abs(self.qty) * self.avg + q * price) / (abs(self.qty) + q))
                self.qty += remaining
                legs.append(Leg(q, True, self.episode_no, self.episode_dir, ZERO, False))
                remaining = ZERO
            else:
                direction = self.episode_dir
                q = min(abs(remaining), abs(self.qty))
                pnl = (price - self.avg) * q * direction
                self.qty += q * (1 if remaining > 0 else -1)
                remaining -= q * (1 if remaining > 0 else -1)
                closes = self.qty == 0
                legs.append(Leg(q, False, self.episode_no, direction, pnl, closes))
                if closes:
                    self.avg = ZERO
        return legs
