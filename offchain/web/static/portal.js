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

  // ---- Consortium -----------------------------------------------------------

  async function loadMembers() {
    const roleNames = ['DEFAULT_ADMIN_ROLE', 'GUARDIAN_ROLE', 'DATA_OWNER_ROLE', 'DOCTOR_ROLE', 'RESEARCHER_ROLE',
      'PATIENT_ROLE', 'EMERGENCY_ROLE', 'COORDINATOR_ROLE', 'PARTICIPANT_ROLE'];
    const $body = $('#members-table tbody').empty();
    for (const name of roleNames) {
      const role = await contract[name]();
      const accounts = unique((await logs(contract.filters.RoleGranted(role))).map((log) => log.args.account));
      const holders = [];
      for (const account of accounts) if (await contract.hasRole(role, account)) holders.push(account);
      $body.append($('<tr>').attr('data-role', name).append($('<td>').text(name.replace('_ROLE', '').toLowerCase().replace('_', '-')),
        $('<td class="font-monospace small">').text(holders.join(' ') || '—')));
    }
  }

  // ---- start ----------------------------------------------------------------

  const DEFAULT_TAB = [['data-owner', 'records'], ['doctor', 'read'], ['researcher', 'read'], ['emergency', 'read'],
    ['patient', 'mydata'], ['coordinator', 'studies'], ['participant', 'studies'], ['admin', 'consortium']];

  async function start() {
    session = await api('GET', '/api/session');
    const provider = new ethers.JsonRpcProvider(session.rpcUrl, session.chainId, { staticNetwork: true });
    contract = new ethers.Contract(session.contract.address, session.contract.abi, provider);
    $('#whoami').text(session.account + ' · ' + (session.roles.join(', ') || 'no role') + ' · chain ' + session.chainId);
    $('body').attr('data-ready', 'true');
    const first = DEFAULT_TAB.find(([role]) => session.roles.includes(role));
    bootstrap.Tab.getOrCreateInstance($('#tab-' + (first ? first[1] : 'read'))[0]).show();
    await Promise.all([loadRecords(), loadShared(), loadMyData(), loadMembers()]);
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
    start().catch((failure) => { $('body').attr('data-ready', 'failed'); fail(failure); });
  });
})(window.jQuery, window.ethers);
