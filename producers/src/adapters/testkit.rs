//! What every adapter's tests share: the golden check and the bad-input table runner.

use super::{Adapter, SourceContext, Translation};

/// Example input in, exact canonical records out, compared with the golden file (rewritten, for
/// review, when BLUELIGHT_UPDATE_GOLDEN is set). The same bytes must also give the same event ids.
pub(crate) fn assert_golden(
    adapter: &dyn Adapter,
    source: &SourceContext,
    example: &str,
    golden: &str,
) {
    let t = adapter.translate(example.as_bytes(), source);
    assert!(t.rejected.is_empty(), "{:?}", t.rejected);
    let got: Vec<serde_json::Value> = t
        .accepted
        .iter()
        .map(|a| {
            serde_json::json!({ "at": a.locator.to_string(), "topic": a.record.topic(), "key": a.record.key(), "record": a.record.to_json() })
        })
        .collect();
    let got = serde_json::to_string_pretty(&got).expect("json") + "\n";
    if std::env::var_os("BLUELIGHT_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &got).expect("write golden");
    }
    let want =
        std::fs::read_to_string(golden).expect("golden file; run with BLUELIGHT_UPDATE_GOLDEN=1");
    assert_eq!(got, want, "translation differs from {golden}");
    assert_eq!(
        adapter.translate(example.as_bytes(), source),
        t,
        "a re-sent input must translate identically"
    );
}

/// Each bad input is refused whole, with exactly the expected error text.
pub(crate) fn assert_rejections<W: AsRef<str>>(
    translate: impl Fn(&str) -> Translation,
    cases: Vec<(String, W)>,
) {
    assert!(cases.len() >= 10, "at least ten bad inputs per adapter");
    for (input, want) in cases {
        let t = translate(&input);
        assert!(t.accepted.is_empty(), "accepted a bad record: {input}");
        let got = t
            .rejected
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(got, want.as_ref(), "input: {input}");
    }
}

/// Feeds `noise`, and `example` with bytes flipped and then cut short, to the adapter: it must not
/// panic, every record must be accepted or rejected with a reason, and every span must lie inside
/// its input.
pub(crate) fn assert_survives_mutation(
    adapter: &dyn Adapter,
    source: &SourceContext,
    example: &str,
    noise: &[u8],
    flips: &[(proptest::sample::Index, u8)],
    cut: proptest::sample::Index,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    let check = |input: &[u8]| {
        let t = adapter.translate(input, source);
        for r in &t.rejected {
            prop_assert!(r.span.start <= r.span.end && r.span.end <= input.len());
            prop_assert!(!r.problems.is_empty());
        }
        for a in &t.accepted {
            prop_assert!(a.span.start <= a.span.end && a.span.end <= input.len());
        }
        Ok(())
    };
    check(noise)?;
    let mut bytes = example.as_bytes().to_vec();
    for (at, b) in flips {
        let i = at.index(bytes.len());
        bytes[i] ^= b;
    }
    check(&bytes)?;
    check(&bytes[..cut.index(bytes.len())])
}
