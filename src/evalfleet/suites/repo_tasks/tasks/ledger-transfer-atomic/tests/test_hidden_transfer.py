import unittest

from ledger import InsufficientFundsError, Ledger


class TransferTest(unittest.TestCase):
    def setUp(self):
        self.book = Ledger()
        self.book.open("alice")
        self.book.open("bob")
        self.book.deposit("alice", "100")

    def balances(self):
        return {name: acct.balance for name, acct in self.book.accounts.items()}

    def test_successful_transfer(self):
        self.book.transfer("alice", "bob", "30")
        self.assertEqual(self.balances(), {"alice": 7000, "bob": 3000})

    def test_unknown_target_changes_nothing(self):
        with self.assertRaises(KeyError):
            self.book.transfer("alice", "carol", "30")
        self.assertEqual(self.balances(), {"alice": 10000, "bob": 0})
        self.assertEqual(len(self.book.history), 1)

    def test_same_account_changes_nothing(self):
        with self.assertRaises(ValueError):
            self.book.transfer("alice", "alice", "30")
        self.assertEqual(self.balances()["alice"], 10000)

    def test_unknown_source(self):
        with self.assertRaises(KeyError):
            self.book.transfer("zed", "bob", "1")
        self.assertEqual(self.book.total(), 10000)

    def test_smallest_amount_and_zero(self):
        self.book.transfer("alice", "bob", "0.01")
        with self.assertRaises(ValueError):
            self.book.transfer("alice", "bob", 0)
        self.assertEqual(self.balances(), {"alice": 9999, "bob": 1})

    def test_insufficient_funds_changes_nothing(self):
        with self.assertRaises(InsufficientFundsError):
            self.book.transfer("alice", "bob", "500")
        self.assertEqual(self.balances(), {"alice": 10000, "bob": 0})


if __name__ == "__main__":
    unittest.main()
