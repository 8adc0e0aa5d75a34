"""Convention fingerprints: each adapter's conventions measured from probe cases and
compared with the preset it declares. A mismatch is a finding: it fails unless a known
deviation (check name ``fingerprint.<probe>``) records it, strictly."""


def test_fingerprint(target, fingerprinter):
    fingerprinter(target)
