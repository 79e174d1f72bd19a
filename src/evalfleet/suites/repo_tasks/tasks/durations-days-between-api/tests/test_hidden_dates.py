import datetime as dt
import unittest

from durations import add_days, days_between


class DatesTest(unittest.TestCase):
    def test_strings(self):
        self.assertEqual(days_between("2024-01-01", "2024-03-01"), 60)

    def test_dates(self):
        self.assertEqual(days_between(dt.date(2024, 1, 1), dt.date(2024, 1, 31)), 30)

    def test_mixed_and_negative(self):
        self.assertEqual(days_between("2024-01-10", dt.date(2024, 1, 1)), -9)

    def test_datetime_counts_as_its_date(self):
        self.assertEqual(days_between(dt.datetime(2024, 1, 1, 23, 59), "2024-01-02"), 1)

    def test_add_days_to_date(self):
        self.assertEqual(add_days(dt.date(2024, 2, 28), 1), dt.date(2024, 2, 29))

    def test_add_days_to_string(self):
        self.assertEqual(add_days(" 2023-12-31 ", 1), dt.date(2024, 1, 1))


if __name__ == "__main__":
    unittest.main()
