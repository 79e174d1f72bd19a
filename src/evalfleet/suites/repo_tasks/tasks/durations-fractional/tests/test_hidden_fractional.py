import unittest

from durations import DurationError, parse_duration


class FractionalTest(unittest.TestCase):
    def test_decimal_hours(self):
        seconds = parse_duration("1.5h")
        self.assertEqual(seconds, 5400)
        self.assertIsInstance(seconds, int)

    def test_decimal_minutes(self):
        self.assertEqual(parse_duration("0.5m"), 30)

    def test_mixed(self):
        self.assertEqual(parse_duration("1h 0.5m"), 3630)

    def test_not_whole_seconds(self):
        with self.assertRaises(DurationError):
            parse_duration("0.3s")

    def test_malformed_number(self):
        with self.assertRaises(DurationError):
            parse_duration("1.5.h")

    def test_whole_numbers_unchanged(self):
        self.assertEqual(parse_duration("2d"), 172800)
        self.assertIsInstance(parse_duration("2d"), int)


if __name__ == "__main__":
    unittest.main()
