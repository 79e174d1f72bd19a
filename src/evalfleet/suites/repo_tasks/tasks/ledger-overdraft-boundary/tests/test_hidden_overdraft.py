import unittest

from ledger import Account, InsufficientFundsError


class OverdraftTest(unittest.TestCase):
    def test_empty_to_exactly_zero(self):
        account = Account("a")
        account.deposit(1000)
        account.withdraw(1000)
        self.assertEqual(account.balance, 0)

    def test_down_to_exactly_the_limit(self):
        account = Account("a", overdraft_limit=5000)
        account.withdraw(5000)
        self.assertEqual(account.balance, -5000)

    def test_one_cent_beyond_is_refused(self):
        account = Account("a", overdraft_limit=5000)
        with self.assertRaises(InsufficientFundsError):
            account.withdraw(5001)
        self.assertEqual(account.balance, 0)

    def test_can_withdraw_boundary(self):
        account = Account("a", overdraft_limit=100)
        self.assertTrue(account.can_withdraw(100))
        self.assertFalse(account.can_withdraw(101))

    def test_deposits_must_be_positive(self):
        with self.assertRaises(ValueError):
            Account("a").deposit(0)


if __name__ == "__main__":
    unittest.main()
