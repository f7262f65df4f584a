// MedShare portal: reads the contract with ethers, calls the local API where a key is needed.
'use strict';

(function ($, ethers) {
  // The token arrives once in the URL (as Jupyter's); keep it for this tab and take it out of the address bar.
  const token = (function () {
    const url = new URL(window.location.href);
    const fromUrl = url.searchParams.get('token');
    if (fromUrl) {
      sessionStorage.setItem('medshare-token', fromUrl);
      url.searchParams.delete('token');
      window.history.replaceState(null, '', url.pathname + url.hash);
    }
    return sessionStorage.getItem('medshare-token') || '';
  })();

  let session = null;
  let contract = null;

  // ---- small helpers -------------------------------------------------------

  function api(method, path, body) {
    return $.ajax({
      url: path, method: method, dataType: 'json',
      headers: { 'X-MedShare-Token': token },
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

  function short(hex) { return hex.slice(0, 10) + '…' + hex.slice(-6); }

  function when(seconds) {
    seconds = Number(seconds);
    if (!seconds) return '—';
    return new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC (' + seconds + ')';
  }

  function code(text) { return $('<code>').text(text); }

  function busy($button, promise) {
    $button.prop('disabled', true);
    return Promise.resolve(promise).finally(() => $button.prop('disabled', false));
  }

  async function logs(filter) {
    return contract.queryFilter(filter, session.contract.fromBlock, 'latest');
  }

  function unique(values) { return Array.from(new Set(values)); }

  // ---- Records (a hospital's own) -------------------------------------------

  async function loadRecords() {
    const entries = await api('GET', '/api/records');
    const $body = $('#records-table tbody').empty();
    if (!entries.length) $body.append('<tr><td colspan="4" class="text-body-secondary">No records in your index yet.</td></tr>');
    entries.forEach((entry) => {
      const $row = $('<tr>').attr('data-record', entry.record_id);
      $row.append($('<td>').text(short(entry.patient) + ' / ' + entry.name));
      $row.append($('<td>').append(code(short(entry.record_id)).attr('title', entry.record_id)));
      $row.append($('<td>').text('v' + entry.version));
      $row.append($('<td>').append($('<button class="btn btn-sm btn-outline-secondary record-open">').text('Manage')));
      $body.append($row);
    });
  }

  async function showRecord(recordId) {
    const $detail = $('#record-detail').empty().attr('data-record', recordId);
    $detail.append($('<h5>').text('Record ').append(code(recordId)));
    const granted = unique((await logs(contract.filters.AccessGranted(recordId))).map((log) => log.args.grantee));
    const $readers = $('<table class="table table-sm" id="readers-table"><thead><tr><th>Grantee</th><th>Until</th><th>Can read now</th></tr></thead><tbody></tbody></table>');
    for (const grantee of granted) {
      const [grant, canRead] = await Promise.all([contract.grantOf(recordId, grantee), contract.checkAccess(grantee, recordId)]);
      $readers.find('tbody').append($('<tr>').attr('data-grantee', grantee)
        .append($('<td>').append(code(grantee)))
        .append($('<td>').text(when(grant[0])))
        .append($('<td class="can-read">').text(canRead ? 'yes' : 'no')));
    }
    $detail.append($('<h6>').text('Who can read it'), $readers);
    const versions = [];
    (await logs(contract.filters.RecordRegistered(recordId))).forEach((log) => versions.push([1, log.args.cid, log.blockNumber]));
    (await logs(contract.filters.RecordRotated(recordId))).forEach((log) => versions.push([Number(log.args.version), log.args.cid, log.blockNumber]));
    const $versions = $('<ul class="list-unstyled small" id="versions-list">');
    versions.forEach(([version, cid, block]) => $versions.append($('<li>').text('v' + version + ' — block ' + block + ' — CID bytes ').append(code(short(cid)))));
    $detail.append($('<h6>').text('Versions'), $versions);
    $detail.append(`
      <form class="row g-2 mb-2" id="grant-form">
        <div class="col-7"><input class="form-control font-monospace" id="grant-grantee" placeholder="0x… (doctor or researcher)" required></div>
        <div class="col-3"><input class="form-control" id="grant-days" type="number" min="0.01" step="any" value="7" required></div>
        <div class="col-2"><button class="btn btn-primary w-100" id="grant-submit" type="submit">Grant</button></div>
      </form>
      <form class="row g-2" id="revoke-form">
        <div class="col-7"><input class="form-control font-monospace" id="revoke-grantee" placeholder="0x… (grantee)" required></div>
        <div class="col-3 form-check pt-2"><input class="form-check-input" type="checkbox" id="revoke-rotate" checked>
          <label class="form-check-label" for="revoke-rotate">rotate the key</label></div>
        <div class="col-2"><button class="btn btn-outline-danger w-100" id="revoke-submit" type="submit">Revoke</button></div>
      </form>`);
  }

  function upload(event) {
    event.preventDefault();
    const file = $('#upload-file')[0].files[0];
    const query = $.param({ patient: $('#upload-patient').val().trim(), name: $('#upload-name').val().trim() });
    const $bar = $('#upload-progress').removeClass('d-none').find('.progress-bar').css('width', '0%');
    busy($('#upload-submit'), new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open('POST', '/api/records?' + query);
      request.setRequestHeader('X-MedShare-Token', token);
      request.upload.onprogress = (progress) => {
        if (progress.lengthComputable) $bar.css('width', Math.round(100 * progress.loaded / progress.total) + '%');
      };
      request.onload = () => {
        let answer = {};
        try { answer = JSON.parse(request.responseText); } catch (ignored) { /* not JSON */ }
        if (request.status === 200) {
          say('success', 'Registered ' + answer.patient + '/' + answer.name + ' as record ' + answer.record_id);
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
    const body = { grantees: [$('#grant-grantee').val().trim()], days: Number($('#grant-days').val()) };
    busy($('#grant-submit'), api('POST', '/api/records/' + recordId + '/grant', body)
      .then((answer) => { say('success', 'Granted until ' + when(answer.expiry)); return showRecord(recordId); })
      .catch(fail));
  }

  function revoke(event) {
    event.preventDefault();
    const recordId = $('#record-detail').attr('data-record');
    const body = { grantee: $('#revoke-grantee').val().trim(), rotate: $('#revoke-rotate').is(':checked') };
    busy($('#revoke-submit'), api('POST', '/api/records/' + recordId + '/revoke', body)
      .then((answer) => { say('success', 'Revoked; the record is at version ' + answer.version); loadRecords(); return showRecord(recordId); })
      .catch(fail));
  }

  function relay(event) {
    event.preventDefault();
    let signed;
    try { signed = JSON.parse($('#relay-json').val()); } catch (error) { say('danger', 'That is not the JSON a patient\'s page produces.'); return; }
    busy($('#relay-submit'), api('POST', '/api/relay/grant', signed)
      .then((answer) => say('success', 'Relayed: ' + answer.grantee + ' may read until ' + when(answer.expiry)))
      .catch(fail));
  }

  // ---- Read (doctors, researchers, emergency) -------------------------------

  async function loadShared() {
    const me = session.account;
    const records = unique((await logs(contract.filters.AccessGranted(null, me))).map((log) => log.args.record)
      .concat((await logs(contract.filters.EmergencyAccessOpened(null, me))).map((log) => log.args.record)));
    const $body = $('#shared-table tbody').empty();
    if (!records.length) $body.append('<tr><td colspan="4" class="text-body-secondary">Nothing has been shared with you.</td></tr>');
    for (const recordId of records) {
      const [grant, canRead] = await Promise.all([contract.grantOf(recordId, me), contract.checkAccess(me, recordId)]);
      $body.append($('<tr>').attr('data-record', recordId)
        .append($('<td>').append(code(short(recordId)).attr('title', recordId)))
        .append($('<td>').text(canRead ? 'can read' : 'no access now'))
        .append($('<td>').text(when(grant[2] > grant[0] ? grant[2] : grant[0])))
        .append($('<td>').append($('<button class="btn btn-sm btn-primary record-download">').text('Download'))));
    }
  }

  async function download(recordId) {
    const response = await fetch('/api/records/' + recordId + '/content', { headers: { 'X-MedShare-Token': token } });
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
      .then((answer) => { say('warning', 'Emergency access open until ' + when(answer.until) + '. The record\'s owner must share its key with you.'); return loadShared(); })
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
      $card.append($('<div class="card-header">').text('Record ').append(code(recordId)).append($('<span class="ms-2 small">').text('held by ' + log.args.owner)));
      const $body = $('<div class="card-body">').appendTo($card);
      const grantees = unique((await logs(contract.filters.AccessGranted(recordId))).map((entry) => entry.args.grantee));
      const $grants = $('<table class="table table-sm grants"><thead><tr><th>Who may read</th><th>Until</th><th>Consent until</th><th>Now</th></tr></thead><tbody></tbody></table>');
      for (const grantee of grantees) {
        const [grant, canRead] = await Promise.all([contract.grantOf(recordId, grantee), contract.checkAccess(grantee, recordId)]);
        $grants.find('tbody').append($('<tr>').append($('<td>').append(code(grantee)), $('<td>').text(when(grant[0])),
          $('<td>').text(when(grant[1])), $('<td>').text(canRead ? 'yes' : 'no')));
      }
      const $reads = $('<table class="table table-sm reads"><thead><tr><th>Read by</th><th>Version</th><th>When</th></tr></thead><tbody></tbody></table>');
      (await logs(contract.filters.AccessLogged(recordId))).forEach((entry) => {
        $reads.find('tbody').append($('<tr class="logged-read">').attr('data-reader', entry.args.reader)
          .append($('<td>').append(code(entry.args.reader)), $('<td>').text('v' + entry.args.version), $('<td>').text(when(entry.args.timestamp))));
      });
      const $glass = $('<ul class="list-unstyled small break-glass">');
      (await logs(contract.filters.EmergencyAccessOpened(recordId))).forEach((entry) => {
        $glass.append($('<li>').text('Break-glass by ' + entry.args.user + ' until ' + when(entry.args.expiry)));
      });
      $body.append($grants, $('<h6>').text('Every logged read'), $reads, $('<h6>').text('Break-glass openings'), $glass);
      $mine.append($card);
    }
  }

  function consent(event) {
    event.preventDefault();
    const recordId = $('#consent-record').val().trim();
    const withdraw = $('#consent-given').val() === 'false';
    const body = { researcher: $('#consent-researcher').val().trim(), withdraw: withdraw, days: Number($('#consent-days').val()) };
    busy($('#consent-submit'), api('POST', '/api/records/' + recordId + '/consent', body)
      .then((answer) => {
        say('success', answer.until ? 'Consent given to ' + answer.researcher + ' until ' + when(answer.until) : 'Consent withdrawn from ' + answer.researcher);
        return loadMyData();
      })
      .catch(fail));
  }

  async function signGrant(event) {
    event.preventDefault();
    if (!window.ethereum) { say('danger', 'No wallet found: install one (e.g. MetaMask) holding your patient account.'); return; }
    const recordId = $('#sign-record').val().trim();
    const grantee = $('#sign-grantee').val().trim();
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

  let accuracyChart = null;

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
    const nameOf = (account) => (report.participants.find((p) => p.address === account) || {}).name || short(account);
    const phase = round.state === 'open' ? ', phase ' + round.secure_phase : '';
    return '; secure' + phase + ': ' + round.survivors.length + ' survivors'
      + (round.dropped.length ? ', dropped ' + round.dropped.map(nameOf).join(', ') : '');
  }

  function privacyCell(report, participant) {
    const $cell = $('<td class="privacy">');
    if (!report.dpDeclared) return $cell.text('no DP declared');
    const spend = participant.privacy;
    $cell.text('ε ' + spend.epsilon.toFixed(3) + (spend.budget !== null ? ' of ' + spend.budget : ' (no budget declared)')
      + ' at δ ' + spend.delta);
    if (spend.budget !== null) {
      const share = Math.min(100, 100 * spend.epsilon / spend.budget);
      $cell.append($('<div class="progress mt-1" role="progressbar">').attr('aria-label', 'privacy budget spent')
        .append($('<div class="progress-bar">').toggleClass('bg-danger', spend.over_budget).css('width', share + '%')));
    }
    return $cell;
  }

  async function showStudy(number) {
    $('#study-loading').text('reading, verifying and scoring study ' + number + '…');
    let report;
    try { report = await api('GET', '/api/studies/' + number); } finally { $('#study-loading').text(''); }
    const $report = $('#study-report').empty().attr('data-study', report.study);
    const facts = [['Coordinator', report.coordinator], ['Quorum', report.minUpdates + ' updates per round'],
      ['Model', report.model || '—'], ['Aggregator', report.aggregator || '—'],
      ['Differential privacy', report.dpDeclared ? 'DP-SGD declared' : 'no DP declared'],
      ['Auditors', report.auditors.join(' ') || '—'],
      ['Latest model', report.latestRound ? 'round ' + report.latestRound : 'the genesis model']];
    const $facts = $('<dl class="row small mb-3" id="study-facts">');
    facts.forEach(([name, value]) => $facts.append($('<dt class="col-sm-3">').text(name), $('<dd class="col-sm-9 font-monospace">').text(value)));
    const $rounds = $('<table class="table table-sm align-middle" id="rounds-table"><thead><tr><th>Round</th><th>State</th>'
      + '<th>Updates</th><th>Verified</th><th>Test accuracy</th><th>Aggregate</th></tr></thead><tbody></tbody></table>');
    report.rounds.forEach((round) => {
      $rounds.find('tbody').append($('<tr>').attr('data-round', round.round).attr('data-state', round.state)
        .append($('<td>').text(round.round), $('<td class="round-state">').text(round.state),
          $('<td class="round-updates">').text(round.submitters.length
            + (round.state === 'committed' ? ' (' + round.counted.length + ' counted)' : '') + secureText(round, report)),
          $('<td class="round-verified">').text(verdictText(round))
            .toggleClass('text-success', round.verified === true && round.state === 'committed')
            .toggleClass('text-danger', round.verified === false),
          $('<td class="round-accuracy">').text(round.test_accuracy === null ? '—' : round.test_accuracy.toFixed(3)),
          $('<td>').append(round.aggregate_cid ? code(short(round.aggregate_cid)).attr('title', round.aggregate_cid) : '—')));
    });
    if (!report.rounds.length) $rounds.find('tbody').append('<tr><td colspan="6" class="text-body-secondary">No round opened yet.</td></tr>');
    const $participants = $('<table class="table table-sm align-middle" id="participants-table"><thead><tr><th>Hospital</th>'
      + '<th>Key</th><th>Updates (counted)</th><th>Privacy spent</th></tr></thead><tbody></tbody></table>');
    for (const participant of report.participants) {
      const $who = $('<td>').append(code(participant.address));
      if (participant.name) $who.prepend($('<span class="participant-name me-2">').text(participant.name));
      $participants.find('tbody').append($('<tr>').attr('data-participant', participant.address).append($who,
        $('<td class="key-suite">').text(await keyOf(participant.address)),
        $('<td>').text(participant.submitted + ' (' + participant.counted + ')'), privacyCell(report, participant)));
    }
    const $notes = $('<ul class="small text-body-secondary" id="study-notes">');
    report.notes.forEach((note) => $notes.append($('<li>').text(note)));
    const $chart = $('<div class="chart-box"><canvas id="accuracy-chart" aria-label="test accuracy by round" role="img"></canvas></div>');
    $report.append($facts, $('<h6>').text('Rounds'), $rounds, $('<h6>').text('Test accuracy by round'), $chart,
      $('<h6>').text('Participants'), $participants, $notes);
    const scored = report.rounds.filter((round) => round.test_accuracy !== null);
    if (accuracyChart) accuracyChart.destroy();
    accuracyChart = new window.Chart($chart.find('canvas')[0], {
      type: 'line',
      data: { labels: scored.map((round) => 'round ' + round.round),
        datasets: [{ label: 'test accuracy (held-out split)', data: scored.map((round) => round.test_accuracy) }] },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 1 } } },
    });
    $report.attr('data-rendered', 'true');
  }

  // ---- Consortium (admins) --------------------------------------------------

  async function loadMembers() {
    const $body = $('#members-table tbody').empty();
    const $roles = $('#member-role');
    if (!$roles.children().length) Object.keys(session.roleIds).forEach((label) => $roles.append($('<option>').val(label).text(label)));
    const members = await api('GET', '/api/members');  // from the event store: the contract does not enumerate
    for (const label of Object.keys(session.roleIds)) {
      const holders = members[label] || [];
      const $members = $('<td class="small">');
      for (const holder of holders) {
        $members.append($('<div class="member">').attr('data-member', holder).append(code(holder), ' ',
          $('<span class="key-suite text-body-secondary">').text(await keyOf(holder))));
      }
      if (!holders.length) $members.text('—');
      $body.append($('<tr>').attr('data-role', label).append($('<td>').text(label), $members));
    }
  }

  function changeMember(event) {
    event.preventDefault();
    const submitter = event.originalEvent && event.originalEvent.submitter;
    const action = submitter ? submitter.value : 'add';
    const body = { role: $('#member-role').val(), address: $('#member-address').val().trim() };
    busy($('#member-form button'), api('POST', '/api/members/' + action, body)
      .then((answer) => {
        const holds = action === 'add' ? 'now holds' : 'no longer holds';
        say('success', answer.address + ' ' + holds + ' the ' + answer.role + ' role' + (answer.changed ? '' : ' (nothing to change)'));
        return loadMembers();
      })
      .catch(fail));
  }

  // ---- start ----------------------------------------------------------------

  const DEFAULT_TAB = [['data-owner', 'records'], ['doctor', 'read'], ['researcher', 'read'], ['emergency', 'read'],
    ['patient', 'mydata'], ['coordinator', 'studies'], ['participant', 'studies'], ['admin', 'consortium']];

  async function start() {
    session = await api('GET', '/api/session');
    const provider = new ethers.JsonRpcProvider(session.rpcUrl, session.chainId, { staticNetwork: true });
    contract = new ethers.Contract(session.contract.address, session.contract.abi, provider);
    const key = session.keySuite ? 'key ' + session.keySuite + (session.keyPublished ? '' : ' (not published)') : 'no keystore';
    $('#whoami').text(session.account + ' · ' + (session.roles.join(', ') || 'no role') + ' · ' + key + ' · chain ' + session.chainId);
    $('body').attr('data-ready', 'true');
    const first = DEFAULT_TAB.find(([role]) => session.roles.includes(role));
    bootstrap.Tab.getOrCreateInstance($('#tab-' + (first ? first[1] : 'read'))[0]).show();
    await Promise.all([loadRecords(), loadShared(), loadMyData(), loadMembers(),
      // A study that cannot be reported says why in its place; the other pages still work.
      loadStudies().catch((failure) => $('#study-report').empty().append($('<p class="text-danger" id="study-error">').text(errorText(failure))))]);
    $('body').attr('data-loaded', 'true');
  }

  $(function () {
    $('#upload-form').on('submit', upload);
    $('#relay-form').on('submit', relay);
    $('#records-table').on('click', '.record-open', function () { showRecord($(this).closest('tr').attr('data-record')).catch(fail); });
    $('#record-detail').on('submit', '#grant-form', grant).on('submit', '#revoke-form', revoke);
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
    $('#member-form').on('submit', changeMember);
    start().catch((failure) => { $('body').attr('data-ready', 'failed'); fail(failure); });
  });
})(window.jQuery, window.ethers);
