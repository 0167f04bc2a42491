//! Smoke test: every algorithm round-trips.
use crate::common;
use tower_jwt_auth::Algorithm;
#[test]
fn every_algorithm_round_trips() {
    let v = common::verifier();
    for alg in Algorithm::ALL {
        let t = common::token(alg, &common::claims());
        let c = v.verify(&t).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(c.subject(), Some("user-1"));
    }
}
