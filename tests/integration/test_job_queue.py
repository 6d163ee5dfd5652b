"""The job queue through 127.0.0.1:8080: a checkout answers at once, a worker makes the invoice.

(A worker killed mid-job is the chaos scenario kill-worker-mid-job.)
"""
import pytest

from labctl import operations, progress, status, topology

INVOICE_WITHIN_S = 30


def place_order(client):
    assert client.post("/cart/items", json={"product_id": 2, "qty": 3}).status_code == 200
    r = client.post("/orders", json=None, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    return r.json()


def invoice_of(client, order_id):
    r = client.get(f"/orders/{order_id}")
    assert r.status_code == 200, r.text
    return r.json()["invoice"]


def wait_for_invoice(client, order_id):
    def made():
        invoice = invoice_of(client, order_id)
        return "made_by" in invoice, invoice
    return progress.wait_until(made, INVOICE_WITHIN_S, interval_s=0.3)


def test_a_checkout_answers_at_once_and_a_worker_makes_its_invoice(logged_in):
    placed = place_order(logged_in)
    assert placed["invoice"] == {"state": "queued", "poll": f"/orders/{placed['order_id']}"}
    invoice = wait_for_invoice(logged_in, placed["order_id"])
    assert invoice["state"] == "done" and invoice["made_by"] in topology.WORKERS and invoice["attempt"] == 1
    assert invoice["number"] == f"INV-{placed['order_id']:08d}"


@pytest.fixture
def no_workers(lab):
    """The lab with its job workers stopped; the standard ones start again afterwards."""
    operations.scale_workers(0)
    yield
    operations.scale_workers(topology.STANDARD_WORKERS)


def test_without_workers_jobs_wait_in_the_queue_and_are_done_once_workers_come(no_workers, logged_in):
    placed = place_order(logged_in)
    shown = status.collect()["jobs"]
    assert shown["workers"] == [] and shown["counts"]["queued"] >= 1, shown
    assert shown["oldest_waiting_s"] is not None
    assert invoice_of(logged_in, placed["order_id"]) == {"state": "queued", "attempts": 0}
    operations.scale_workers(1)
    invoice = wait_for_invoice(logged_in, placed["order_id"])
    assert invoice["made_by"] == topology.WORKERS[0]
