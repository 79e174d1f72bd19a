"""Accounts and transfers with exact integer-cent arithmetic."""

from ledger.accounts import Account, InsufficientFundsError
from ledger.book import Ledger
from ledger.money import format_cents, format_money, parse_amount

__all__ = [
    "Account",
    "InsufficientFundsError",
    "Ledger",
    "format_cents",
    "format_money",
    "parse_amount",
]
