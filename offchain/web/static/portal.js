// MedShare portal: reads the contract with ethers, calls the local API where a key is needed.
'use strict';

(function ($, ethers) {
  // The server traded the URL's token for an HttpOnly session cookie; the page proves it is the page
  // with a header no other site can send without a CORS preflight (which is never answered).
  const PAGE_HEADER = { 'X-MedShare-Page': '1' };

  let session = null;
  let contract = null;

  // ---- small helpers -------------------------------------------------------

  function api(method, path, body) {
    return $.ajax({
      url: path, method: method, dataType: 'json', headers: PAGE_HEADER,
      contentType: body === undefined ? false : 'application/json',
      data: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  function errorText(failure) {
    if (failure && failure.responseJSON && failure.responseJSON.error) return failure.responseJSON.error;
    if (failure && failure.revert && failure.revert.name) return explainRevert(failure.revert);
    if (failure && failure.data && contract) {
      try { return explainRevert(contract.interface.parseError(failure.data)); } catch (ignored) { /* not ours */ }
    }
    if (failure && failure.status === 0) return 'the portal server is not answering';
    return (failure && (failure.shortMessage || failure.message || failure.statusText)) || 'something went wrong';
  }

  function explainRevert(parsed) {
    const notice = session.contract.errors[parsed.name];
    if (!notice) return parsed.name;
    const names = parsed.fragment.inputs.map((input) => input.name);
    return notice.replace(/`(\w+)`/g, (whole, name) => {
      const at = names.indexOf(name);
      return at < 0 ? whole : String(parsed.args[at]);
    });
  }

  function say(kind, text) {
    const $alert = $('<div class="alert alert-dismissible fade show" role="alert">')
      .addClass('alert-' + kind).attr('data-kind', kind).text(text)
      .append('<button type="button" class="btn-close" data-bs-dismiss="alert" aria-label="Close"></button>');
    $('#alerts').empty().append($alert);
  }

  function fail(failure) { say('danger', errorText(failure)); }

  function short(hex) { return hex.slice(0, 8) + '…' + hex.slice(-4); }

  // A readable date in UTC (the chain's clock); the exact instant on hover.
  function when(seconds) {
    seconds = Number(seconds);
    if (!seconds) return '—';
    return new Date(seconds * 1000).toLocaleString('en-GB', {
      day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC',
    }) + ' UTC';
  }

  function nameOf(address) {
    const name = session.names[address];
    if (address === session.account) return (name ? name + ' ' : '') + '(you)';
    return name || null;
  }

  // A member by name where known (the address book), the address on hover and copied on click.
  function who(address) {
    const name = nameOf(address);
    return $('<button type="button" class="btn btn-link p-0 align-baseline text-start who">')
      .toggleClass('font-monospace', !name).attr({ 'data-address': address, title: address + ' (click to copy)' })
      .text(name || short(address));
  }

  // A CID as IPFS writes it: base58btc for CIDv0, base32 (multibase 'b') for CIDv1.
  const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
  function cidText(hex) {
    const bytes = ethers.getBytes(hex);
    if (bytes.length === 34 && bytes[0] === 0x12 && bytes[1] === 0x20) return ethers.encodeBase58(bytes);
    let out = 'b';
    let bits = 0;
    let value = 0;
    for (const byte of bytes) {
      value = (value << 8) | byte;
      bits += 8;
      while (bits >= 5) { out += BASE32[(value >>> (bits - 5)) & 31]; bits -= 5; }
      value &= (1 << bits) - 1;
    }
    if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
    return out;
  }

  function code(text) { return $('<code>').text(text); }

  // An address typed as a known name becomes the address; anything else is sent as typed.
  function resolve(value) {
    value = value.trim();
    const named = Object.entries(session.names).find(([, name]) => name.toLowerCase() === value.toLowerCase());
    return named ? named[0] : value;
  }

  function busy($button, promise) {
    $button.prop('disabled', true);
    return Promise.resolve(promise).finally(() => $button.prop('disabled', false));
  }

  function emptyRow($table, columns, text) {
    $table.find('tbody').append($('<tr class="empty">').append($('<td class="text-body-secondary">').attr('colspan', columns).text(text)));
  }

  function confirmAction(text, yes) {
    return new Promise((resolve) => {
      const modal = bootstrap.Modal.getOrCreateInstance($('#confirm-modal')[0]);
      let answer = false;
      $('#confirm-text').text(text);
      $('#confirm-yes').text(yes).off('click').on('click', () => { answer = true; modal.hide(); });
      $('#confirm-modal').one('hidden.bs.modal', () => resolve(answer));
      modal.show();
    });
  }

  async function logs(filter) {
    return contract.queryFilter(filter, session.contract.fromBlock, 'latest');
  }

  function unique(values) { return Array.from(new Set(values)); }

  // ---- Records (a hospital's own) -------------------------------------------

  async function loadRecords() {
    const entries = await api('GET', '/api/records');
    const $table = $('#records-table');
    const $body = $table.find('tbody').empty();
    if (!entries.length) emptyRow($table, 4, 'No records in your index yet.');
    entries.forEach((entry) => {
      const $row = $('<tr>').attr('data-record', entry.record_id);
      $row.append($('<td>').append(who(entry.patient), ' / ', $('<span>').text(entry.name)));
      $row.append($('<td>').append(code(short(entry.record_id)).attr('title', entry.record_id)));
      $row.append($('<td>').text('v' + entry.version));
      $row.append($('<td>').append($('<button class="btn btn-sm btn-outline-secondary record-open">').text('Manage')
        .attr('aria-label', 'Manage ' + entry.name)));
      $body.append($row);
    });
  }

  // Break-glass readers waiting for a key to one of our records (the library lists them).
  async function loadPendingEmergency() {
    if (!session.roles.includes('data-owner')) return;
    const pending = await api('GET', '/api/emergency/pending');
    const $list = $('#emergency-pending').empty();
    $('#emergency-pending-card').toggleClass('d-none', !pending.length);
    pending.forEach((entry) => {
      $list.append($('<li class="list-group-item pending-share">').attr({ 'data-record': entry.record, 'data-reader': entry.reader })
        .append($('<div>').append(who(entry.reader), ' opened record ', code(short(entry.record)).attr('title', entry.record)),
          $('<div class="small">').text('version ' + entry.version + ', open until ' + when(entry.until)),
          $('<button type="button" class="btn btn-sm btn-warning mt-2 share-key">').text('Share key')));
    });
  }

  async function shareKey(recordId, reader) {
    await api('POST', '/api/records/' + recordId + '/share', { readers: [reader] });
    say('success', 'Key shared: ' + (nameOf(reader) || reader) + ' can now read record ' + recordId);
    await loadPendingEmergency();
  }

  async function showRecord(recordId) {
    const $detail = $('#record-detail').empty().attr('data-record', recordId);
    $detail.append($('<h2 class="h5 text-break">').text('Record ').append(code(recordId)));
    const granted = unique((await logs(contract.filters.AccessGranted(recordId))).map((log) => log.args.grantee));
    const $readers = $('<table class="table table-sm" id="readers-table"><caption class="visually-hidden">Who can read this record</caption>'
      + '<thead><tr><th scope="col">Grantee</th><th scope="col">Until</th><th scope="col">Can read now</th></tr></thead><tbody></tbody></table>');
    for (const grantee of granted) {
      const [grant, canRead] = await Promise.all([contract.grantOf(recordId, grantee), contract.checkAccess(grantee, recordId)]);
      $readers.find('tbody').append($('<tr>').attr('data-grantee', grantee)
        .append($('<td>').append(who(grantee)))
        .append($('<td>').text(when(grant[0])))
        .append($('<td class="can-read">').text(canRead ? 'yes' : 'no')));
    }
    if (!granted.length) emptyRow($readers, 3, 'Nobody has been granted access yet.');
    $detail.append($('<h3 class="h6">').text('Who can read it'), $('<div class="table-responsive" tabindex="0">').append($readers));
    const versions = [];
    (await logs(contract.filters.RecordRegistered(recordId))).forEach((log) => versions.push([1, log.args.cid, log.blockNumber]));
    (await logs(contract.filters.RecordRotated(recordId))).forEach((log) => versions.push([Number(log.args.version), log.args.cid, log.blockNumber]));
    const $versions = $('<ul class="list-unstyled small" id="versions-list">');
    versions.forEach(([version, cid, block]) => $versions.append($('<li class="text-break">')
      .attr('data-version', version).text('v' + version + ' (block ' + block + '): CID ').append(code(cidText(cid)).addClass('cid'))));
    $detail.append($('<h3 class="h6">').text('Versions'), $versions);
    $detail.append(`
      <h3 class="h6">Grant or revoke</h3>
      <form class="row g-2 mb-2" id="grant-form">
        <div class="col-12 col-sm-6"><label class="visually-hidden" for="grant-grantee">Doctor or researcher to grant</label>
          <input class="form-control font-monospace" id="grant-grantee" list="known-people" placeholder="doctor or researcher (0x… or name)" required></div>
        <div class="col-7 col-sm-4"><label class="visually-hidden" for="grant-days">For how many days</label>
          <div class="input-group"><input class="form-control" id="grant-days" type="number" min="0.01" step="any" value="7" required>
          <span class="input-group-text">days</span></div></div>
        <div class="col-5 col-sm-2"><button class="btn btn-primary w-100" id="grant-submit" type="submit">Grant</button></div>
      </form>
      <form class="row g-2" id="revoke-form">
        <div class="col-12 col-sm-6"><label class="visually-hidden" for="revoke-grantee">Grantee to revoke</label>
          <input class="form-control font-monospace" id="revoke-grantee" list="known-people" placeholder="grantee (0x… or name)" required></div>
        <div class="col-7 col-sm-4 pt-2"><div class="form-check"><input class="form-check-input" type="checkbox" id="revoke-rotate" checked>
          <label class="form-check-label" for="revoke-rotate">rotate the key</label></div></div>
        <div class="col-5 col-sm-2"><button class="btn btn-outline-danger w-100" id="revoke-submit" type="submit">Revoke</button></div>
      </form>`);
  }

  function upload(event) {
    event.preventDefault();
    const file = $('#upload-file')[0].files[0];
    const query = $.param({ patient: resolve($('#upload-patient').val()), name: $('#upload-name').val().trim() });
    const $bar = $('#upload-progress').removeClass('d-none').find('.progress-bar').css('width', '0%');
    busy($('#upload-submit'), new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open('POST', '/api/records?' + query);
      request.setRequestHeader('X-MedShare-Page', '1');
      request.upload.onprogress = (progress) => {
        if (progress.lengthComputable) $bar.css('width', Math.round(100 * progress.loaded / progress.total) + '%');
      };
      request.onload = () => {
        let answer = {};
        try { answer = JSON.parse(request.responseText); } catch (ignored) { /* not JSON */ }
        if (request.status === 200) {
          say('success', 'Registered ' + (nameOf(answer.patient) || answer.patient) + '/' + answer.name + ' as record ' + answer.record_id);
          loadRecords().catch(fail);
        } else {
          fail({ responseJSON: answer, statusText: request.statusText });
        }
        resolve();
      };
      request.onerror = () => { fail({ status: 0 }); resolve(); };
      request.send(file);
    }));
  }

  function grant(event) {
    event.preventDefault();
    const recordId = $('#record-detail').attr('data-record');
    const body = { grantees: [resolve($('#grant-grantee').val())], days: Number($('#grant-days').val()) };
    busy($('#grant-submit'), api('POST', '/api/records/' + recordId + '/grant', body)
      .then((answer) => { say('success', 'Granted until ' + when(answer.expiry)); return showRecord(recordId); })
      .catch(fail));
  }

  function revoke(event) {
    event.preventDefault();
    const recordId = $('#record-detail').attr('data-record');
    const body = { grantee: resolve($('#revoke-grantee').val()), rotate: $('#revoke-rotate').is(':checked') };
    busy($('#revoke-submit'), api('POST', '/api/records/' + recordId + '/revoke', body)
      .then((answer) => { say('success', 'Revoked; the record is at version ' + answer.version); loadRecords(); return showRecord(recordId); })
      .catch(fail));
  }

  function relay(event) {
    event.preventDefault();
    let signed;
    try { signed = JSON.parse($('#relay-json').val()); } catch (error) { say('danger', 'That is not the JSON a patient\'s page produces.'); return; }
    busy($('#relay-submit'), api('POST', '/api/relay/grant', signed)
      .then((answer) => say('success', 'Relayed: ' + (nameOf(answer.grantee) || answer.grantee) + ' may read until ' + when(answer.expiry)))
      .catch(fail));
  }

  // ---- Read (doctors, researchers, emergency) -------------------------------

  // What a reader can do with a record now: read it, wait for the owner's key (break-glass), or nothing.
  async function readState(recordId) {
    const me = session.account;
    const [grant, canRead, current] = await Promise.all([contract.grantOf(recordId, me), contract.checkAccess(me, recordId),
      contract.currentCid(recordId)]);
    const until = grant[2] > grant[0] ? grant[2] : grant[0];
    if (!canRead) return { state: 'none', text: 'no access now', until: until };
    const keys = await logs(contract.filters.DataKeyShared(recordId, me, current[1]));
    if (!keys.length) return { state: 'waiting', text: 'waiting for the owner\'s key', until: until };
    return { state: 'readable', text: grant[2] > grant[0] ? 'can read (emergency)' : 'can read', until: until };
  }

  async function loadShared() {
    const me = session.account;
    const records = unique((await logs(contract.filters.AccessGranted(null, me))).map((log) => log.args.record)
      .concat((await logs(contract.filters.EmergencyAccessOpened(null, me))).map((log) => log.args.record)));
    const $table = $('#shared-table');
    const $body = $table.find('tbody').empty();
    if (!records.length) emptyRow($table, 4, 'Nothing has been shared with you.');
    for (const recordId of records) {
      const access = await readState(recordId);
      const $action = $('<td>');
      if (access.state === 'readable') {
        $action.append($('<button class="btn btn-sm btn-primary record-download">').text('Download')
          .attr('aria-label', 'Download record ' + short(recordId)));
      }
      $body.append($('<tr>').attr({ 'data-record': recordId, 'data-access': access.state })
        .append($('<td>').append(code(short(recordId)).attr('title', recordId)))
        .append($('<td class="access">').append($('<span class="badge">').text(access.text)
          .addClass({ readable: 'text-bg-success', waiting: 'text-bg-warning', none: 'text-bg-secondary' }[access.state])))
        .append($('<td>').text(when(access.until)))
        .append($action));
    }
  }

  async function download(recordId) {
    const response = await fetch('/api/records/' + recordId + '/content', { headers: PAGE_HEADER });
    if (!response.ok) {
      let answer = {};
      try { answer = await response.json(); } catch (ignored) { /* not JSON */ }
      throw { responseJSON: answer, statusText: response.statusText };
    }
    const name = (/filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '') || [])[1] || 'record.bin';
    const url = URL.createObjectURL(await response.blob());
    const $link = $('<a class="d-none">').attr({ href: url, download: name }).appendTo('body');
    $link[0].click();
    setTimeout(() => { URL.revokeObjectURL(url); $link.remove(); }, 1000);
    say('success', 'Read logged on chain; decrypted and verified as ' + name);
  }

  function emergency(event) {
    event.preventDefault();
    const recordId = $('#emergency-record').val().trim();
    const body = { reason: $('#emergency-reason').val(), hours: Number($('#emergency-hours').val()) };
    busy($('#emergency-submit'), api('POST', '/api/records/' + recordId + '/emergency', body)
      .then((answer) => { say('warning', 'Emergency access open until ' + when(answer.until) + '. The record\'s owner must share its key with you before you can download it.'); return loadShared(); })
      .catch(fail));
  }

  // ---- My data (patients) ---------------------------------------------------

  async function loadMyData() {
    const me = session.account;
    const $mine = $('#my-records').empty();
    const registered = await logs(contract.filters.RecordRegistered(null, null, me));
    if (!registered.length) $mine.append('<p class="text-body-secondary">No record names you as its patient.</p>');
    for (const log of registered) {
      const recordId = log.args.record;
      const $card = $('<div class="card mb-3 my-record">').attr('data-record', recordId);
      $card.append($('<div class="card-header text-break">').append($('<h2 class="h6 mb-1">').text('Record ').append(code(recordId)),
        $('<span class="small">').text('held by ').append(who(log.args.owner))));
      const $body = $('<div class="card-body">').appendTo($card);
      const grantees = unique((await logs(contract.filters.AccessGranted(recordId))).map((entry) => entry.args.grantee));
      const $grants = $('<table class="table table-sm grants"><caption class="visually-hidden">Who may read this record</caption>'
        + '<thead><tr><th scope="col">Who may read</th><th scope="col">Until</th><th scope="col">Consent until</th><th scope="col">Now</th></tr></thead><tbody></tbody></table>');
      for (const grantee of grantees) {
        const [grant, canRead] = await Promise.all([contract.grantOf(recordId, grantee), contract.checkAccess(grantee, recordId)]);
        $grants.find('tbody').append($('<tr>').append($('<td>').append(who(grantee)), $('<td>').text(when(grant[0])),
          $('<td>').text(when(grant[1])), $('<td>').text(canRead ? 'can read' : 'cannot read')));
      }
      if (!grantees.length) emptyRow($grants, 4, 'Nobody has been granted access.');
      const $reads = $('<table class="table table-sm reads"><caption class="visually-hidden">Every logged read of this record</caption>'
        + '<thead><tr><th scope="col">Read by</th><th scope="col">Version</th><th scope="col">When</th></tr></thead><tbody></tbody></table>');
      const reads = await logs(contract.filters.AccessLogged(recordId));
      reads.forEach((entry) => {
        $reads.find('tbody').append($('<tr class="logged-read">').attr('data-reader', entry.args.reader)
          .append($('<td>').append(who(entry.args.reader)), $('<td>').text('v' + entry.args.version), $('<td>').text(when(entry.args.timestamp))));
      });
      if (!reads.length) emptyRow($reads, 3, 'Nobody has read this record yet.');
      const $glass = $('<ul class="list-unstyled small break-glass">');
      const openings = await logs(contract.filters.EmergencyAccessOpened(recordId));
      openings.forEach((entry) => {
        $glass.append($('<li>').append('Break-glass by ', who(entry.args.user), ' until ' + when(entry.args.expiry)));
      });
      if (!openings.length) $glass.append($('<li class="text-body-secondary">').text('No emergency opening.'));
      $body.append($('<div class="table-responsive" tabindex="0">').append($grants), $('<h3 class="h6">').text('Every logged read'),
        $('<div class="table-responsive" tabindex="0">').append($reads), $('<h3 class="h6">').text('Break-glass openings'), $glass);
      $mine.append($card);
    }
  }

  function consent(event) {
    event.preventDefault();
    const recordId = $('#consent-record').val().trim();
    const withdraw = $('#consent-given').val() === 'false';
    const body = { researcher: resolve($('#consent-researcher').val()), withdraw: withdraw, days: Number($('#consent-days').val()) };
    busy($('#consent-submit'), api('POST', '/api/records/' + recordId + '/consent', body)
      .then((answer) => {
        const researcher = nameOf(answer.researcher) || answer.researcher;
        say('success', answer.until ? 'Consent given to ' + researcher + ' until ' + when(answer.until) : 'Consent withdrawn from ' + researcher);
        return loadMyData();
      })
      .catch(fail));
  }

  async function signGrant(event) {
    event.preventDefault();
    if (!window.ethereum) { say('danger', 'No wallet found: install one (e.g. MetaMask) holding your patient account.'); return; }
    const recordId = $('#sign-record').val().trim();
    const grantee = resolve($('#sign-grantee').val());
    const days = Number($('#sign-days').val());
    await busy($('#sign-submit'), (async () => {
      const [wallet] = await window.ethereum.request({ method: 'eth_requestAccounts' });
      const patient = ethers.getAddress(wallet);
      // The signature speaks for the patient as of a mined block: anything a later block changes (a
      // revocation, a withdrawal) supersedes it. The block before the latest is named because nodes
      // simulate the relay in the latest block's context, where the latest itself is not yet "before".
      // Nonces are unordered, so a random one never blocks another signature.
      const latest = await contract.runner.provider.getBlock('latest');
      const issuedBlock = Math.max(latest.number - 1, 0);
      const expiry = Number(latest.timestamp) + Math.round(days * 86400);
      const deadline = Number(latest.timestamp) + 7 * 86400;
      const nonce = ethers.toBigInt(ethers.randomBytes(16));
      const typed = {
        types: {
          EIP712Domain: [{ name: 'name', type: 'string' }, { name: 'version', type: 'string' },
            { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' }],
          Grant: [{ name: 'record', type: 'bytes32' }, { name: 'grantee', type: 'address' }, { name: 'expiry', type: 'uint64' },
            { name: 'nonce', type: 'uint256' }, { name: 'issuedBlock', type: 'uint64' }, { name: 'deadline', type: 'uint256' }],
        },
        primaryType: 'Grant',
        domain: { name: 'MedicalAccess', version: '1', chainId: session.chainId, verifyingContract: session.contract.address },
        message: { record: recordId, grantee: ethers.getAddress(grantee), expiry: expiry, nonce: nonce.toString(),
          issuedBlock: issuedBlock, deadline: deadline },
      };
      const signature = await window.ethereum.request({ method: 'eth_signTypedData_v4', params: [patient, JSON.stringify(typed)] });
      $('#signed-grant').val(JSON.stringify({ record: recordId, grantee: typed.message.grantee, expiry: expiry,
        nonce: typed.message.nonce, issuedBlock: issuedBlock, deadline: deadline, signature: signature }, null, 1));
      say('success', 'Signed. Give the text below to the hospital holding the record.');
    })().catch(fail));
  }

  // ---- Studies (coordinators, participants, auditors) ------------------------

  let metricsChart = null;
  const BUDGET_WARNING = 80; // percent of the privacy budget from which a hospital's spend shows amber

  async function loadStudies() {
    if (!session.registry) { $('#studies-none').removeClass('d-none'); return; }
    $('#studies-body').removeClass('d-none');
    const numbers = await api('GET', '/api/studies');
    const $select = $('#study-select').empty();
    numbers.slice().reverse().forEach((number) => $select.append($('<option>').val(number).text('Study ' + number)));
    if (!numbers.length) {
      $('#study-report').empty().append('<p class="text-body-secondary">No study has been created yet.</p>');
      return;
    }
    await showStudy(numbers[numbers.length - 1]);
  }

  async function keyOf(account) {
    const [, suite, version] = await contract.encryptionKeyOf(account);
    return Number(version) ? (session.keySuites[String(suite)] || 'suite ' + suite) + ' v' + version : 'no key published';
  }

  function verdictText(round) {
    if (round.state !== 'committed') return round.state === 'cancelled' ? 'cancelled: nothing to verify' : 'not yet committed';
    if (round.verified === null) return 'not checked';
    return round.verified ? 'verified' : 'FAILED ' + round.failed_check + ': ' + round.failure;
  }

  // A secure round (secure aggregation): its survivors and the hospitals that dropped out, by name where known.
  function secureText(round, report) {
    if (round.secure_phase === null || round.secure_phase === undefined) return '';
    const nameOfParticipant = (account) => (report.participants.find((p) => p.address === account) || {}).name || short(account);
    const phase = round.state === 'open' ? ', phase ' + round.secure_phase : '';
    return '; secure' + phase + ': ' + round.survivors.length + ' survivors'
      + (round.dropped.length ? ', dropped ' + round.dropped.map(nameOfParticipant).join(', ') : '');
  }

  function privacyCell(report, participant) {
    const $cell = $('<td class="privacy">');
    if (!report.dpDeclared) return $cell.text('no DP declared');
    const spend = participant.privacy;
    $cell.text('ε ' + spend.epsilon.toFixed(3) + (spend.budget !== null ? ' of ' + spend.budget : ' (no budget declared)')
      + ' at δ ' + spend.delta);
    if (spend.budget !== null) {
      const share = 100 * spend.epsilon / spend.budget;
      const level = spend.over_budget || share >= 100 ? 'danger' : share >= BUDGET_WARNING ? 'warning' : 'success';
      $cell.attr('data-level', level);
      $cell.append($('<div class="small budget-share">').addClass(level === 'success' ? 'text-body-secondary' : 'text-' + level + '-emphasis fw-semibold')
        .text(share.toFixed(1) + '% of the budget' + (level === 'danger' ? ': spent' : level === 'warning' ? ': nearly spent' : '')));
      $cell.append($('<div class="progress mt-1" role="progressbar">').attr({ 'aria-label': 'privacy budget spent',
        'aria-valuenow': Math.round(Math.min(100, share)), 'aria-valuemin': 0, 'aria-valuemax': 100 })
        .append($('<div class="progress-bar">').addClass('bg-' + level).css('width', Math.min(100, share) + '%')));
    }
    return $cell;
  }

  // The metrics each hospital published about a round's model (offchain/rounds/evaluation.py), and their
  // weighted combination: one row each. A regression study shows MSE and MAE instead of the clinical ones.
  const METRIC_COLUMNS = [['auroc', 'AUROC'], ['sensitivity', 'Sensitivity'], ['specificity', 'Specificity'],
    ['brier', 'Brier'], ['accuracy', 'Accuracy'], ['mse', 'MSE'], ['mae', 'MAE'], ['loss', 'Loss'], ['examples', 'Examples']];

  // The weighted metrics plotted by round: those between 0 and 1 (the loss, MSE and MAE are not).
  const CHART_METRICS = [['auroc', 'AUROC'], ['sensitivity', 'Sensitivity'], ['specificity', 'Specificity'],
    ['accuracy', 'Accuracy'], ['brier', 'Brier']];

  function metricsTable(report) {
    const published = report.rounds.filter((round) => round.metrics);
    const shown = METRIC_COLUMNS.filter(([key]) => published.some((round) => round.metrics.weighted
      && round.metrics.weighted[key] !== undefined && (key !== 'examples' || round.metrics.weighted.examples !== null)));
    const $table = $('<table class="table table-sm align-middle" id="metrics-table"><caption class="visually-hidden">'
      + "Metrics the hospitals published by round</caption><thead><tr><th scope=\"col\">Round</th><th scope=\"col\">Hospital</th>"
      + '</tr></thead><tbody></tbody></table>');
    shown.forEach(([, label]) => $table.find('thead tr').append($('<th scope="col">').text(label)));
    const value = (metrics, key) => {
      const v = metrics[key];
      if (v === undefined || v === null) return '—';
      return key === 'examples' ? String(v) : v.toFixed(3);
    };
    const row = (round, name, metrics, isWeighted) => $('<tr>').attr('data-round', round.round)
      .attr('data-hospital', isWeighted ? 'weighted' : name).toggleClass('fw-semibold', isWeighted)
      .append($('<td>').text(round.round), $('<td>').text(isWeighted ? 'weighted' : (nameOf(name) || short(name))),
        ...shown.map(([key]) => $('<td>').addClass('metric-' + key).text(value(metrics, key))));
    published.forEach((round) => {
      if (round.metrics.weighted) $table.find('tbody').append(row(round, '', round.metrics.weighted, true));
      Object.entries(round.metrics.hospitals).forEach(([address, metrics]) => $table.find('tbody').append(row(round, address, metrics, false)));
    });
    if (!published.length) emptyRow($table, 2, 'No metrics published that you can read; the notes below say why.');
    return $('<div class="table-responsive" tabindex="0">').append($table);
  }

  async function showStudy(number) {
    $('#study-loading').text('reading and verifying study ' + number + '…');
    let report;
    try { report = await api('GET', '/api/studies/' + number); } finally { $('#study-loading').text(''); }
    const $report = $('#study-report').empty().attr('data-study', report.study);
    const names = (accounts) => (accounts.length ? accounts.map((account) => nameOf(account) || account).join(', ') : '—');
    const facts = [['Coordinator', names([report.coordinator])], ['Quorum', report.minUpdates + ' updates per round'],
      ['Model', report.model || '—'], ['Aggregator', report.aggregator || '—'],
      ['Differential privacy', report.dpDeclared ? 'DP-SGD declared' : 'no DP declared'],
      ['Auditors', names(report.auditors)],
      ['Latest model', report.latestRound ? 'round ' + report.latestRound : 'the genesis model']];
    const $facts = $('<dl class="row small mb-3" id="study-facts">');
    facts.forEach(([name, value]) => $facts.append($('<dt class="col-sm-3">').text(name), $('<dd class="col-sm-9 text-break">').text(value)));
    const $rounds = $('<table class="table table-sm align-middle" id="rounds-table"><caption class="visually-hidden">Rounds of the study</caption>'
      + '<thead><tr><th scope="col">Round</th><th scope="col">State</th><th scope="col">Updates</th><th scope="col">Verified</th>'
      + '<th scope="col">Bytes per update stored</th><th scope="col">Aggregate</th></tr></thead><tbody></tbody></table>');
    report.rounds.forEach((round) => {
      $rounds.find('tbody').append($('<tr>').attr('data-round', round.round).attr('data-state', round.state)
        .append($('<td>').text(round.round), $('<td class="round-state">').text(round.state),
          $('<td class="round-updates">').text(round.submitters.length
            + (round.state === 'committed' ? ' (' + round.counted.length + ' counted)' : '') + secureText(round, report)),
          $('<td class="round-verified">').text(verdictText(round))
            .toggleClass('text-success-emphasis', round.verified === true && round.state === 'committed')
            .toggleClass('text-danger-emphasis', round.verified === false),
          $('<td class="round-bytes">').text(round.update_bytes === null ? '—' : round.update_bytes.toLocaleString('en')),
          $('<td>').append(round.aggregate_cid ? code(short(round.aggregate_cid)).attr('title', round.aggregate_cid) : '—')));
    });
    if (!report.rounds.length) emptyRow($rounds, 6, 'No round opened yet.');
    const $participants = $('<table class="table table-sm align-middle" id="participants-table"><caption class="visually-hidden">Hospitals in the study</caption>'
      + '<thead><tr><th scope="col">Hospital</th><th scope="col">Key</th><th scope="col">Updates (counted)</th><th scope="col">Privacy spent</th></tr></thead><tbody></tbody></table>');
    for (const participant of report.participants) {
      const $who = $('<td>').append(who(participant.address).toggleClass('participant-name', Boolean(participant.name))
        .text(participant.name || short(participant.address)));
      $participants.find('tbody').append($('<tr>').attr('data-participant', participant.address).append($who,
        $('<td class="key-suite">').text(await keyOf(participant.address)),
        $('<td>').text(participant.submitted + ' (' + participant.counted + ')'), privacyCell(report, participant)));
    }
    const $notes = $('<ul class="small text-body-secondary" id="study-notes">');
    report.notes.forEach((note) => $notes.append($('<li>').text(note)));
    // The weighted metrics the hospitals published (a consortium's coordinator holds no test split of its own).
    const scored = report.rounds.filter((round) => round.metrics && round.metrics.weighted);
    const plotted = CHART_METRICS.filter(([key]) => scored.some((round) => typeof round.metrics.weighted[key] === 'number'));
    if (metricsChart) { metricsChart.destroy(); metricsChart = null; }
    const $chart = scored.length && plotted.length
      ? $('<div class="chart-box"><canvas id="metrics-chart" role="img"></canvas></div>')
        .find('canvas').attr('aria-label', "the hospitals' weighted " + plotted.map(([, label]) => label).join(', ')
          + ' by round; the table below lists every value').end()
      : $('<p class="small text-body-secondary" id="metrics-none">').text(report.rounds.some((round) => round.state === 'committed')
        ? 'No committed round has metrics you can read; the notes below say why.' : 'No round has been committed yet.');
    $report.append($facts, $('<h2 class="h6">').text('Rounds'), $('<div class="table-responsive" tabindex="0">').append($rounds),
      $('<h2 class="h6">').text("Hospitals' weighted metrics by round"), $chart,
      $('<h2 class="h6">').text("Hospitals' metrics by round (their own validation splits)"), metricsTable(report),
      $('<h2 class="h6">').text('Participants'), $('<div class="table-responsive" tabindex="0">').append($participants));
    if (report.dpDeclared) {
      $report.append($('<p class="small" id="privacy-explained">').text('Privacy spent (ε, epsilon) bounds how much the updates '
        + 'a hospital sent can reveal about any one of its patients: smaller is more private, and it adds up round after round. '
        + 'The budget is the most the study lets each hospital spend; δ (delta) is the small chance that the bound does not hold. '
        + 'The bar turns amber at ' + BUDGET_WARNING + '% of the budget and red when it is spent.'));
    }
    if (report.notes.length) $report.append($('<h2 class="h6">').text('Notes'), $notes);
    else $report.append($notes);
    if (scored.length && plotted.length) {
      metricsChart = new window.Chart($chart.find('canvas')[0], {
        type: 'line',
        data: { labels: scored.map((round) => 'round ' + round.round),
          datasets: plotted.map(([key, label]) => ({ label: label + ', weighted (validation splits)',
            data: scored.map((round) => (typeof round.metrics.weighted[key] === 'number' ? round.metrics.weighted[key] : null)) })) },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 1 } } },
      });
    }
    $report.attr('data-rendered', 'true');
  }

  // ---- Consortium (admins) --------------------------------------------------

  async function loadMembers() {
    const $body = $('#members-table tbody').empty();
    const $roles = $('#member-role');
    if ($roles.children().length === 1) Object.keys(session.roleIds).forEach((label) => $roles.append($('<option>').val(label).text(label)));
    const members = await api('GET', '/api/members');  // from the event store: the contract does not enumerate
    for (const label of Object.keys(session.roleIds)) {
      const holders = members[label] || [];
      const $members = $('<td class="small">');
      for (const holder of holders) {
        $members.append($('<div class="member">').attr('data-member', holder).append(who(holder), ' ',
          $('<span class="key-suite text-body-secondary">').text(await keyOf(holder))));
      }
      if (!holders.length) $members.text('—');
      $body.append($('<tr>').attr('data-role', label).append($('<th scope="row" class="fw-normal">').text(label), $members));
    }
  }

  async function changeMember(action) {
    const role = $('#member-role').val();
    const address = resolve($('#member-address').val());
    const label = $('#member-label').val().trim();
    if (!role) { say('danger', 'Choose the role to ' + (action === 'add' ? 'give' : 'take away') + ' first.'); return; }
    if (!address) { say('danger', 'Type the member\'s address.'); return; }
    if (action === 'remove' || role === 'admin') {
      const text = action === 'remove'
        ? 'Take the ' + role + ' role away from ' + address + '? It takes effect at once, and a removed reader\'s grants are void for good.'
        : 'Make ' + address + ' a consortium admin? An admin can add and remove every member, other admins included.';
      if (!await confirmAction(text, action === 'remove' ? 'Remove' : 'Make admin')) { say('info', 'Nothing was changed.'); return; }
    }
    await busy($('#member-form button'), api('POST', '/api/members/' + action, { role: role, address: address, label: label })
      .then((answer) => {
        if (answer.name) session.names[answer.address] = answer.name;
        const holds = action === 'add' ? 'now holds' : 'no longer holds';
        say('success', (answer.name ? answer.name + ' (' + answer.address + ')' : answer.address) + ' ' + holds + ' the ' + answer.role + ' role' + (answer.changed ? '' : ' (nothing to change)'));
        fillKnownPeople();
        return loadMembers();
      })
      .catch(fail));
  }

  // ---- start ----------------------------------------------------------------

  // The pages each role uses, in the order a role's first page is picked; Studies and Consortium are for everyone.
  const PAGES = [['records', ['data-owner']], ['read', ['doctor', 'researcher', 'emergency']], ['mydata', ['patient']],
    ['studies', null], ['consortium', null]];
  const FIRST_PAGE = [['data-owner', 'records'], ['doctor', 'read'], ['researcher', 'read'], ['emergency', 'read'],
    ['patient', 'mydata'], ['coordinator', 'studies'], ['participant', 'studies'], ['admin', 'consortium']];

  function holds(roles) { return roles === null || roles.some((role) => session.roles.includes(role)); }

  // Each form only for the roles that can use it: the others never see it.
  function showRolesPages() {
    $('.role-form').each(function () {
      if (!holds($(this).attr('data-roles').split(' '))) $(this).remove();
    });
    PAGES.forEach(([page, roles]) => $('#tab-' + page).closest('li').toggleClass('d-none', !holds(roles)));
    const first = FIRST_PAGE.find(([role]) => session.roles.includes(role));
    bootstrap.Tab.getOrCreateInstance($('#tab-' + (first ? first[1] : 'studies'))[0]).show();
  }

  function fillKnownPeople() {
    const $list = $('#known-people').empty();
    Object.entries(session.names).forEach(([address, name]) => $list.append($('<option>').val(name).text(address)));
  }

  function notConnected(failure) {
    $('body').attr('data-ready', 'failed');
    $('#whoami').text('not connected');
    $('form :input').prop('disabled', true);
    const refused = failure && failure.status === 403;
    say('danger', refused
      ? 'This page is not connected to your portal: the token is missing or wrong. Open the URL that `medshare web` printed (it carries the token), in this browser.'
      : 'The portal is not answering: ' + errorText(failure) + '. Is `medshare web` still running?');
    bootstrap.Tab.getOrCreateInstance($('#tab-consortium')[0]).show();
  }

  async function start() {
    try {
      session = await api('GET', '/api/session');
    } catch (failure) {
      notConnected(failure);
      return;
    }
    const provider = new ethers.JsonRpcProvider(session.rpcUrl, session.chainId, { staticNetwork: true });
    contract = new ethers.Contract(session.contract.address, session.contract.abi, provider);
    const key = session.keySuite ? 'key ' + session.keySuite + (session.keyPublished ? '' : ' (not published)') : 'no keystore';
    $('#whoami').empty().append($('<span class="text-break">').text((session.names[session.account] || session.account)),
      $('<span>').text(' · ' + (session.roles.join(', ') || 'no role') + ' · ' + key + ' · chain ' + session.chainId))
      .attr('title', session.account);
    fillKnownPeople();
    showRolesPages();
    $('body').attr('data-ready', 'true');
    await Promise.all([loadRecords(), loadPendingEmergency(), loadShared(), loadMyData(), loadMembers(),
      // A study that cannot be reported says why in its place; the other pages still work.
      loadStudies().catch((failure) => $('#study-report').empty().append($('<p class="text-danger-emphasis" id="study-error">').text(errorText(failure))))]);
    $('body').attr('data-loaded', 'true');
  }

  $(function () {
    $('#upload-form').on('submit', upload);
    $('#relay-form').on('submit', relay);
    $('#records-table').on('click', '.record-open', function () { showRecord($(this).closest('tr').attr('data-record')).catch(fail); });
    $('#record-detail').on('submit', '#grant-form', grant).on('submit', '#revoke-form', revoke);
    $('#emergency-pending').on('click', '.share-key', function () {
      const $item = $(this).closest('li');
      busy($(this), shareKey($item.attr('data-record'), $item.attr('data-reader')).catch(fail));
    });
    $('#shared-table').on('click', '.record-download', function () {
      const $button = $(this);
      busy($button, download($button.closest('tr').attr('data-record')).catch(fail));
    });
    $('#open-form').on('submit', (event) => {
      event.preventDefault();
      busy($('#open-submit'), download($('#open-record').val().trim()).catch(fail));
    });
    $('#emergency-form').on('submit', emergency);
    $('#consent-form').on('submit', consent);
    $('#sign-form').on('submit', signGrant);
    $('#study-form').on('submit', (event) => {
      event.preventDefault();
      busy($('#study-submit'), showStudy($('#study-select').val()).catch(fail));
    });
    // Enter in the member form submits nothing: adding and removing are deliberate clicks.
    $('#member-form').on('submit', (event) => event.preventDefault());
    $('#member-add').on('click', () => changeMember('add'));
    $('#member-remove').on('click', () => changeMember('remove'));
    $(document).on('click', '.who', function () {
      const address = $(this).attr('data-address');
      Promise.resolve(navigator.clipboard && navigator.clipboard.writeText(address))
        .then(() => say('info', 'Copied ' + address), () => say('info', address));
    });
    // On a phone the menu closes once a page is chosen.
    $('#tabs').on('shown.bs.tab', () => { const menu = bootstrap.Collapse.getInstance($('#nav-pages')[0]); if (menu) menu.hide(); });
    start().catch((failure) => { $('body').attr('data-ready', 'failed'); fail(failure); });
  });
})(window.jQuery, window.ethers);
