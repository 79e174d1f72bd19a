import unittest

from durations import format_duration


class FormatTest(unittest.TestCase):
    def test_negative(self):
        self.assertEqual(format_duration(-90), "-1m 30s")

    def test_negative_hours(self):
        self.assertEqual(format_duration(-7200), "-2h")

    def test_positive(self):
        self.assertEqual(format_duration(90), "1m 30s")

    def test_zero(self):
        self.assertEqual(format_duration(0), "0s")

    def test_every_unit(self):
        self.assertEqual(format_duration(694861), "1w 1d 1h 1m 1s")


if __name__ == "__main__":
    unittest.main()
