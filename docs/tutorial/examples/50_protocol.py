from memcache_protocol import Parser

pipeline = b"set greeting 5 0 11\r\nhello world\r\nget greeting other\r\ndelete greeting\r\nbogus\r\n"

parser = Parser()
print(parser.feed(pipeline))

print("the same bytes, one at a time:")
parser = Parser()
for i in range(len(pipeline)):
    for request in parser.feed(pipeline[i : i + 1]):
        print(f"  byte {i:2}: {request}")
