"""A ledger of accounts with deposits, withdrawals and transfers."""

from ledger.accounts import Account
from ledger.money import parse_amount


def _cents(amount):
    """Cents from an int (already in cents) or from amount text such as '12.50'."""
    if isinstance(amount, int):
        return amount
    return parse_amount(amount)


class Ledger:
    """Accounts by name plus the history of every movement."""

    def __init__(self):
        self.accounts = {}
        self.history = []

    def open(self, name, overdraft_limit=0):
        """Open a new account; ValueError if the name is taken."""
        if name in self.accounts:
            raise ValueError(f"account {name!r} already exists")
        self.accounts[name] = Account(name, overdraft_limit)
        return self.accounts[name]

    def account(self, name):
        """The account with this name; KeyError if there is none."""
        try:
            return self.accounts[name]
        except KeyError:
            raise KeyError(f"no account named {name!r}") from None

    def deposit(self, name, amount):
        cents = _cents(amount)
        self.account(name).deposit(cents)
        self.history.append(("deposit", None, name, cents))

    def withdraw(self, name, amount):
        cents = _cents(amount)
        self.account(name).withdraw(cents)
        self.history.append(("withdrawal", name, None, cents))

    def transfer(self, source, target, amount):
        """Move money between two different accounts, all or nothing."""
        cents = _cents(amount)
        src = self.account(source)
        src.withdraw(cents)
        dst = self.account(target)
        if src is dst:
            raise ValueError("cannot transfer to the same account")
        dst.deposit(cents)
        self.history.append(("transfer", source, target, cents))

    def total(self):
        """Sum of all balances, in cents."""
        return sum(account.balance for account in self.accounts.values())

    def statement(self, name):
        """(description, change in cents, balance after) for each movement of an account."""
        self.account(name)
        balance = 0
        lines = []
        for kind, source, target, cents in self.history:
            if kind == "deposit" and target == name:
                description, change = "deposit", cents
            elif kind == "withdrawal" and source == name:
                description, change = "withdrawal", -cents
            elif kind == "transfer" and source == name:
                description, change = f"transfer to {target}", -cents
            elif kind == "transfer" and target == name:
                description, change = f"transfer from {source}", cents
            else:
                continue
            balance += change
            lines.append((description, change, balance))
        return lines
