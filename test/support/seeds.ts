/**
 * The knockd.conf fragments of the two tutorials in shared/seeds/, exactly as
 * printed (no section headers; seed 000 has typographic dashes, seed 004
 * capitalised keys and firewall-cmd commands).
 */

/** Seed 000 (Gentoo tutorial, iptables commands). */
export const SEED_000 = `logfile = /var/log/knockd.log

sequence = 7000,8000,9000
seq_timeout = 15
command = /sbin/iptables -I INPUT -s %IP% -p tcp –dport 22 -j ACCEPT
cmd_timeout = 10
tcpflags = syn
stop_command = /sbin/iptables -D INPUT -s %IP% -p tcp –dport 22 -j ACCEPT
`;

/** Seed 004 (CentOS 7 tutorial, firewall-cmd commands). */
export const SEED_004 = `logfile = /var/log/knockd.log
Sequence = 3333,4444,5555
Seq_timeout = 15
Tcpflags = syn
Command = /bin/firewall-cmd --zone=public --add-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"

Sequence = 6666,7777,8888
Seq_timeout = 15
Tcpflags = syn
Command = /bin/firewall-cmd --zone=public --remove-rich-rule="rule family="ipv4" source address="%IP%" service name="ssh" accept"
`;
