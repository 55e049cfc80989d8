/* Strict parsing of numeric command-line values: a typo must be a usage error,
 * not a silent 0 (which for --port would mean "any port"). */
#ifndef REUSEPORT_TESTS_MEMBERS_NUMBER_ARG_H
#define REUSEPORT_TESTS_MEMBERS_NUMBER_ARG_H

/* Parses a decimal number in [0, max]; exits with MEMBER_EXIT_USAGE naming
 * the option otherwise. */
unsigned long parse_number_arg(const char *option, const char *text, unsigned long max);

#endif
