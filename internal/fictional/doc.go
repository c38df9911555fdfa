// Package fictional holds only a test: every domain name that the
// repository's tests, test data and documentation use as data must be one
// that can never belong to anyone — under a TLD that RFC 2606 and RFC 6761
// reserve (.example, .test, .invalid, .localhost) or under example.com,
// example.net or example.org. A name under a real TLD in a test can end up
// in an RPZ exported or transferred by mistake, in a report mailed from a
// test setup, or in a query sent to the real DNS, and then it blocks,
// accuses or reaches someone's real domain.
//
// The test walks the repository from its root: every *_test.go file
// (string literals and comments), every file under a testdata directory,
// the Markdown documentation and the example configurations. A name
// counts as under a real TLD when its last label is a TLD of the root zone
// (golang.org/x/net/publicsuffix's ICANN section). What may stay is on a
// short allow-list in the test, each entry with its reason.
package fictional
