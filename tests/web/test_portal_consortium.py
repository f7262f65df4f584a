"""The Consortium page as an admin clicks it: members by role with their key kinds, adding and removing
a member through the same library as `medshare members`, and every refusal in words."""

from __future__ import annotations

import json

from click.testing import CliRunner

from offchain.cli import main
from offchain.chain.roles import Role

from .test_portal import _origin_and_token, _request


def _change(page, action: str, role: str, address: str) -> tuple[str, str]:
    """Add or remove through the form, saying yes where the page asks (a removal, an admin grant)."""
    page.select_option("#member-role", role)
    page.fill("#member-address", address)
    page.eval_on_selector("#alerts", "node => node.replaceChildren()")
    page.click(f"#member-{action}")
    if action == "remove" or role == "admin":
        page.click("#confirm-modal.show #confirm-yes")
    alert = page.wait_for_selector("#alerts .alert")
    return alert.get_attribute("data-kind"), alert.inner_text()


def test_admin_adds_and_removes_a_member_and_sees_refusals_in_words(portal, publish_keys, access, admin, doctor,
                                                                   stranger, chain):
    created = CliRunner().invoke(main, ["keys", "create", "--kem", "mlkem768-x25519", "--account", "TEST::2",
                                        "--contract", access.address])
    assert created.exit_code == 0, created.output
    publish_keys(0, 1, 2)
    page = portal(0)
    assert page.locator("#tab-consortium.active").count() == 1
    assert "key x25519" in page.inner_text("#whoami")
    doctors = page.locator("#members-table tr[data-role='doctor']")
    assert doctors.locator(f".member[data-member='{doctor.address}'] .key-suite").inner_text() == "mlkem768-x25519 v1"

    kind, text = _change(page, "add", "doctor", stranger.address)
    assert kind == "success" and f"{stranger.address} now holds the doctor role" in text, text
    assert access.rolesOf(stranger) & Role.DOCTOR
    page.wait_for_selector(f"#members-table tr[data-role='doctor'] .member[data-member='{stranger.address}']")
    assert page.locator(f".member[data-member='{stranger.address}'] .key-suite").inner_text() == "no key published"

    kind, text = _change(page, "remove", "doctor", stranger.address)
    assert kind == "success" and "no longer holds the doctor role" in text, text
    assert not access.rolesOf(stranger) & Role.DOCTOR
    page.wait_for_selector(f"#members-table tr[data-role='doctor'] .member[data-member='{stranger.address}']",
                           state="detached")

    nonce = chain.provider.web3.eth.get_transaction_count(admin.address)
    kind, text = _change(page, "add", "doctor", "0x1234")
    assert kind == "danger" and "not an Ethereum address" in text, text
    kind, text = _change(page, "add", "doctor", "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bC")  # one letter's case wrong
    assert kind == "danger" and "checksum" in text, text
    kind, text = _change(page, "remove", "admin", admin.address)
    assert kind == "danger" and f"{admin.address} is the last consortium admin" in text, text
    assert "Traceback" not in text and "LastAdmin(" not in text
    origin, token = _origin_and_token(page)
    for body, expected in [({"role": "overlord", "address": stranger.address}, "unknown role"),
                           ({"role": "doctor"}, "not an Ethereum address"),
                           ({"role": "doctor", "address": 42}, "not an Ethereum address")]:
        status, _, answer = _request(f"{origin}/api/members/add", token=token, method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        assert status == 400 and expected in answer["error"], (body, answer)
    assert chain.provider.web3.eth.get_transaction_count(admin.address) == nonce  # nothing was sent
    assert access.rolesOf(admin) & Role.ADMIN

    hospital_page = portal(1)  # not an admin: sees the members, no form; the API refuses in words
    hospital_page.click("#tab-consortium")
    assert hospital_page.locator("#members-table tr[data-role='doctor']").count() == 1
    assert hospital_page.locator("#member-form").count() == 0
    origin, token = _origin_and_token(hospital_page)
    status, _, answer = _request(f"{origin}/api/members/add", token=token, method="POST",
                                 data=json.dumps({"role": "doctor", "address": stranger.address}).encode(),
                                 headers={"Content-Type": "application/json"})
    assert status == 400 and "is not a consortium admin" in answer["error"], answer
    assert not access.rolesOf(stranger) & Role.DOCTOR
