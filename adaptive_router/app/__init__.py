"""The application: the ``adaptive-router`` commands, labelling, evaluation, live runs, the demo, tasks,
reports and converters.

It sits apart from the library and uses only the library's public names; nothing in the library imports it
(an import-linter contract in ``make lint`` checks both).
"""
