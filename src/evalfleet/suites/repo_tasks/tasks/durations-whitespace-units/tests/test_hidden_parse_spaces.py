import unittest

from durations import DurationError, parse_duration


class ParseSpacesTest(unittest.TestCase):
    def test_upper_case_units(self):
        self.assertEqual(parse_duration("1H 30M"), 5400)

    def test_space_between_number_and_unit(self):
        self.assertEqual(parse_duration("2 d 4 h"), 187200)

    def test_surrounding_spaces(self):
        self.assertEqual(parse_duration(" 45 s "), 45)

    def test_compact_form_still_works(self):
        self.assertEqual(parse_duration("1h30m"), 5400)

    def test_garbage_raises(self):
        for text in ("5x", "1h foo", "", "h"):
            with self.subTest(text=text), self.assertRaises(DurationError):
                parse_duration(text)


if __name__ == "__main__":
    unittest.main()
