"""Accounts holding a balance in cents."""


class InsufficientFundsError(Exception):
    """A withdrawal would take the balance below the overdraft limit."""


class Account:
    """A named balance in cents that may go down to -overdraft_limit."""

    def __init__(self, name, overdraft_limit=0):
        if overdraft_limit < 0:
            raise ValueError("overdraft_limit must not be negative")
        self.name = name
        self.overdraft_limit = overdraft_limit
        self.balance = 0

    def deposit(self, cents):
        """Add money; the amount must be positive."""
        if cents <= 0:
            raise ValueError("deposits must be positive")
        self.balance += cents

    def can_withdraw(self, cents):
        """Whether withdrawing `cents` keeps the balance within the overdraft limit."""
        return self.balance - cents >= -self.overdraft_limit

    def withdraw(self, cents):
        """Take money out, down to -overdraft_limit at most."""
        if cents <= 0:
            raise ValueError("withdrawals must be positive")
        if not self.can_withdraw(cents):
            raise InsufficientFundsError(
                f"{self.name}: balance {self.balance} cannot cover {cents}"
            )
        self.balance -= cents
