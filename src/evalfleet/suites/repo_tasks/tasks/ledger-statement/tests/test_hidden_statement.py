import unittest

from ledger import InsufficientFundsError, Ledger


class StatementTest(unittest.TestCase):
    def setUp(self):
        self.book = Ledger()
        self.book.open("alice")
        self.book.open("bob")
        self.book.deposit("alice", "100")
        self.book.transfer("alice", "bob", "30")
        self.book.withdraw("bob", "5")
        self.book.transfer("bob", "alice", "10")

    def test_alice(self):
        self.assertEqual(self.book.statement("alice"), [
            ("deposit", 10000, 10000),
            ("transfer to bob", -3000, 7000),
            ("transfer from bob", 1000, 8000),
        ])

    def test_bob(self):
        self.assertEqual(self.book.statement("bob"), [
            ("transfer from alice", 3000, 3000),
            ("withdrawal", -500, 2500),
            ("transfer to alice", -1000, 1500),
        ])

    def test_final_balance_matches_account(self):
        self.assertEqual(self.book.statement("bob")[-1][2], self.book.account("bob").balance)

    def test_failed_operation_not_listed(self):
        with self.assertRaises(InsufficientFundsError):
            self.book.withdraw("bob", "1000")
        self.assertEqual(len(self.book.statement("bob")), 3)

    def test_empty_account(self):
        self.book.open("carol")
        self.assertEqual(self.book.statement("carol"), [])

    def test_unknown_account(self):
        with self.assertRaises(KeyError):
            self.book.statement("nobody")


if __name__ == "__main__":
    unittest.main()
