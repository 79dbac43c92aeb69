package shopd

import (
	"cmp"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// semver is MAJOR.MINOR.PATCH, the form info.version takes.
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$`)

// specVersion returns the info.version of the spec at path, as written and
// as numbers.
func specVersion(t *testing.T, path string) (string, []int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	m := semver.FindStringSubmatch(doc.Info.Version)
	if m == nil {
		t.Fatalf("%s: info.version %q is not MAJOR.MINOR.PATCH", path, doc.Info.Version)
	}
	nums := make([]int, 3)
	for i := range nums {
		nums[i], _ = strconv.Atoi(m[i+1])
	}
	return doc.Info.Version, nums
}

// TestSpecVersionIsReleased checks the versioning promise CHANGELOG.md
// makes: info.version is semver with a section in the changelog, the
// baseline that make breaking compares against is no newer, and the
// TypeScript client carries the same version.
func TestSpecVersionIsReleased(t *testing.T) {
	t.Parallel()
	version, current := specVersion(t, "openapi.yaml")
	baselineVersion, baseline := specVersion(t, "api/baseline.yaml")
	if slices.CompareFunc(current, baseline, cmp.Compare[int]) < 0 {
		t.Errorf("openapi.yaml is %s, older than its baseline's %s", version, baselineVersion)
	}
	changelog, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(changelog), "\n## ["+version+"]") {
		t.Errorf("CHANGELOG.md has no section \"## [%s]\" for openapi.yaml's info.version", version)
	}
	pkg, err := os.ReadFile("clients/typescript/package.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pkg), `"version": "`+version+`"`) {
		t.Errorf("clients/typescript/package.json is not at version %s, the spec's", version)
	}
}
