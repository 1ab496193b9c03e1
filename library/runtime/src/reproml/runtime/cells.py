"""What a CSV cell's text means: the tokens read as missing, the words read as true or
false, the forms of a date, and the characters that may separate cells. Apart from tables.py,
so that reading a config (which names the missing tokens) does not import pyarrow: composing
params.yaml at bake time and the params stage stay light."""

# What a CSV cell holding nothing means, unless a schema says otherwise.
DEFAULT_MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL")
TRUE_VALUES = ["true", "True", "TRUE", "yes", "Yes", "YES", "1"]
FALSE_VALUES = ["false", "False", "FALSE", "no", "No", "NO", "0"]
# Dates besides ISO 8601 (2012-01-31, 2012-01-31T10:30:00), which arrow reads itself: only
# year-first forms, which cannot be misread (01/02/2012 is January or February by country).
DATE_FORMATS = ("%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y.%m.%d")
# The separators a CSV file may use, most usual first (`make data` sniffs which).
DELIMITERS = (",", ";", "\t", "|")
