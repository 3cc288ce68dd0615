/**
 * firewalld_source_prefix (issue #19, item 4) in the lab: a door with prefix
 * 24 opens for the knocker's /24 (the rule's source is the canonical
 * network), --status shows the grant for the network, and a close knock from
 * another address of that network (the lab client's extra address) closes
 * it. On the old code the config is refused (unknown directive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab';
import { canonicalNetwork } from '../../src/decode/network';
import { KNOCKD_BIN, knockFrom, withDaemon, withLab } from './helpers';

let lab!: Lab;
withLab({ ipv6: false, extraClientAddrs: 1 }, (l) => (lab = l));

const has = async (rule: string): Promise<boolean> => (await lab.richRules()).includes(rule);

test('prefix 24: the door opens for the /24; a close knock from another address of it closes it', async () => {
  const conf = `[options]
    logfile = /dev/null
[openSSH]
    sequence          = 3333,4444,5555
    seq_timeout       = 5
    tcpflags          = syn
    firewalld_action  = open
    firewalld_zone    = public
    firewalld_service = ssh
    cmd_timeout       = 60
    firewalld_source_prefix = 24
[closeSSH]
    sequence          = 6666,7777,8888
    seq_timeout       = 5
    tcpflags          = syn
    firewalld_action  = close
    firewalld_zone    = public
    firewalld_service = ssh
    firewalld_source_prefix = 24
`;
  const other = lab.extraClientAddrs[0];
  const net = canonicalNetwork(lab.clientAddr, 24)!;
  assert.equal(canonicalNetwork(other, 24), net, 'the extra address is in the same /24');
  assert.match(net, /^10\.200\.\d+\.0\/24$/);
  const rule = `rule family="ipv4" source address="${net}" service name="ssh" accept`;
  await withDaemon(lab, conf, async () => {
    await knockFrom(lab, lab.clientAddr, lab.serverAddr, [3333, 4444, 5555]);
    await lab.waitFor(() => has(rule), 3000, 25);
    assert.deepEqual(await lab.richRules(), [rule], 'one rule, for the network, none for the address');
    const st = await lab.execIn('server', [process.execPath, KNOCKD_BIN, '--status']);
    assert.equal(st.code, 0, st.stderr);
    assert.ok(st.stdout.includes(net), st.stdout);

    await knockFrom(lab, other, lab.serverAddr, [6666, 7777, 8888]);
    await lab.waitFor(async () => !(await has(rule)), 3000, 25);
    assert.deepEqual(await lab.richRules(), []);
  });
});
