from app.kit.signing import sign, verify

# The example of the Standard Webhooks specification (standard-webhooks/standard-webhooks, spec and libraries).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'


def test_signature_matches_the_specification_example() -> None:
    assert sign(SECRET, MESSAGE_ID, TIMESTAMP, BODY) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_any_listed_signature_and_rejects_a_changed_body() -> None:
    header = "v1,bm90IGl0 " + sign(SECRET, MESSAGE_ID, TIMESTAMP, BODY)
    assert verify(SECRET, MESSAGE_ID, TIMESTAMP, BODY, header)
    assert not verify(SECRET, MESSAGE_ID, TIMESTAMP, BODY + b" ", header)
