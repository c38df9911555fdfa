// Package fictional tells the domain names that can never belong to anyone
// (Reserved), and its test keeps the repository to them.
//
// Every domain name that the repository's tests, test data, examples and
// documentation use as data is under a TLD that RFC 2606 and RFC 6761
// reserve (.example, .test, .invalid, .localhost) or under example.com,
// example.net or example.org. A name under a real TLD in a test can end up
// in an RPZ exported or transferred by mistake, in a report mailed from a
// test setup or in a query sent to the real DNS, and then it blocks,
// accuses or reaches someone's real domain.
//
// TestNoRealNames walks the repository from its root and reads the string
// literals and comments of every Go file, every file under a testdata
// directory, and the Markdown, YAML, shell, Python, CSV, text, JSON and
// configuration files. It fails on every name whose TLD is one that seized
// names come under (the registry's table of TLDs and a few more; not the
// new generic TLDs such as .events or .zone, which are also words of our
// config keys and NATS subjects), unless the name is on the test's short
// allow-list, each entry with its reason: import paths, specifications a
// format names, a registrar's legal name, two names kept under .de and .ru
// because their registries are what the tests check, and a negative case
// of a suffix check. The packages other branches are changing in the same
// session are skipped until those merge (pendingDirs). It takes about a
// second.
package fictional
