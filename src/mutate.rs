//! Random mutations of real inputs for the property tests of the entry points that read what a
//! client, an upstream or an operator wrote (the JSON-RPC reader, the list filter, session ids,
//! the configuration). Deterministic: the same seed gives the same inputs, so a failure repeats.
//! The cargo-fuzz targets under `tests/fuzz/` explore the same entry points without a bound.

use rand::{Rng, SeedableRng};

/// Pieces worth splicing into JSON, SSE and YAML: quotes, escapes, separators, control bytes and
/// invalid UTF-8.
pub const PIECES: [&[u8]; 14] = [
    b"\\u0061", b"\"", b",", b"{", b"}", b"[", b"\\", b"\x00", b"\xff", b"\n\n", b"\r\n",
    b"data: ", b": ", b"- ",
];

/// `count` inputs, each a seed with one to three edits (a byte removed, a piece spliced in, a
/// byte replaced).
pub fn mutations<'a>(
    seeds: &'a [&'a [u8]],
    count: usize,
    seed: u64,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count).map(move |i| {
        let mut body = seeds[i % seeds.len()].to_vec();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=body.len());
            match rng.random_range(0..3) {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 => {
                    let p = PIECES[rng.random_range(0..PIECES.len())];
                    body.splice(at..at, p.iter().copied());
                }
                _ if at < body.len() => body[at] = rng.random(),
                _ => {}
            }
        }
        body
    })
}
