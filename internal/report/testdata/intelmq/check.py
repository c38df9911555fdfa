# Runs IntelMQ's own Shadowserver parser bot on the sinkhole event reports
# in testdata/sinkhole and adds every JSON line of a report to an IntelMQ
# Event without sanitation: the check behind intelmq_test.go's port, by hand,
# since CI cannot fetch IntelMQ. With an IntelMQ 3.2.1 source tree in
# $INTELMQ (the last release with the sinkhole maps in its source) and
# Debian's Python:
#
#   apt-get install -y python3-dateutil python3-dnspython python3-requests \
#       python3-termstyle python3-redis python3-ruamel.yaml python3-psutil python3-tz
#   cd internal/report && go test -run TestJSONIntelMQ -jsondump /tmp/report.jsonl
#   SINKHOLE_DIR=$PWD/testdata/sinkhole JSONL=/tmp/report.jsonl PYTHONPATH=$INTELMQ \
#       runuser -u nobody -- /usr/bin/python3 -W ignore testdata/intelmq/check.py
#
# IntelMQ's test harness refuses to run as root, hence runuser.
import csv, glob, json, os, unittest

import intelmq.lib.test as test
import intelmq.lib.utils as utils
from intelmq.lib.message import Event
from intelmq.bots.parsers.shadowserver.parser import ShadowserverParserBot

FEEDS = {'event4_sinkhole': 'Sinkhole-Events IPv4', 'event4_sinkhole_http': 'Sinkhole-Events-HTTP IPv4',
         'event6_sinkhole': 'Sinkhole-Events IPv6', 'event6_sinkhole_http': 'Sinkhole-Events-HTTP IPv6'}
MAPPED = ('timestamp', 'protocol', 'src_ip', 'src_port', 'src_asn', 'src_geo', 'dst_ip', 'dst_port',
          'family', 'http_host', 'http_url')


class TestSinkholeReports(test.BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = ShadowserverParserBot
        cls.sysconfig = {'feedname': None, 'overwrite': True}

    def test_every_row(self):
        total = 0
        for path in sorted(glob.glob(os.path.join(os.environ['SINKHOLE_DIR'], '*.csv'))):
            name = os.path.basename(path)
            kind = name[len('2024-05-01-'):].split('-')[0]
            with open(path, newline='') as f:
                data = f.read()
            rows = len(list(csv.reader(data.splitlines(True)))) - 1
            self.input_message = {'__type': 'Report', 'feed.name': FEEDS[kind], 'raw': utils.base64_encode(data),
                                  'time.observation': '2024-05-02T00:00:00+00:00', 'extra.file_name': name}
            self.run_bot(allowed_warning_count=0)
            out = [json.loads(m) for m in self.get_output_queue()]
            self.assertEqual(len(out), rows, name)
            for ev in out:
                Event(ev)
                # A value its type refused would sit in extra under its column's name.
                for col in MAPPED:
                    self.assertNotIn('extra.' + col, ev, (name, ev))
                for k in ('time.source', 'source.ip', 'source.port', 'destination.ip', 'destination.port',
                          'protocol.transport', 'classification.type'):
                    self.assertIn(k, ev, (name, ev))
                if kind.endswith('_http'):
                    self.assertIn('destination.url', ev, (name, ev))
            total += rows
        print('rows parsed:', total)
        self.assertGreater(total, 0)

    def test_json_lines(self):
        path = os.environ.get('JSONL')
        if not path:
            return
        n = 0
        with open(path) as f:
            for line in f:
                ev = Event(harmonization=None)
                for k, v in json.loads(line).items():
                    ev.add(k, v, sanitize=False)  # raises InvalidValue or InvalidKey
                n += 1
        print('JSON lines accepted:', n)


if __name__ == '__main__':
    unittest.main()
